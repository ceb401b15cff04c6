/*
 * install(program): the calling process (every thread: TSYNC) gets the seccomp filter `program`
 * (struct sock_filter[], built by lib/seccomp/policy.ts) after PR_SET_NO_NEW_PRIVS. One-way: a
 * filter can be added to, never removed. Only Node-API is used, so the binary does not depend on
 * the Node version it was built with.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static napi_value fail(napi_env env, const char *what, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, message);
  return NULL;
}

static napi_value install(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data = NULL;
  size_t length = 0;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[0], &data, &length) != napi_ok || length == 0 ||
      length % sizeof(struct sock_filter) != 0 || length / sizeof(struct sock_filter) > BPF_MAXINSNS) {
    napi_throw_type_error(env, NULL, "install(program): program must be a Buffer of whole sock_filter instructions");
    return NULL;
  }
  struct sock_fprog program = {.len = (unsigned short)(length / sizeof(struct sock_filter)), .filter = (struct sock_filter *)data};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail(env, "prctl(PR_SET_NO_NEW_PRIVS)", errno);
  long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &program);
  if (r > 0) {
    char message[128];
    snprintf(message, sizeof message, "seccomp: thread %ld could not be synchronised", r);
    napi_throw_error(env, NULL, message);
    return NULL;
  }
  if (r != 0) return fail(env, "seccomp(SECCOMP_SET_MODE_FILTER)", errno);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "install", NAPI_AUTO_LENGTH, install, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "install", fn) != napi_ok) return NULL;
  return exports;
}
