// Test addon (isolated-vm-rebuilt.test.ts): an environment cleanup hook that collects the garbage of
// Node's isolate. Loaded before isolated-vm, its hook runs after isolated-vm's (Node runs them last in,
// first out), as a collection V8 finishes in the tasks Node runs after the hooks does at exit.
#include <node.h>
#include <cstdio>

static void Init(v8::Local<v8::Object> /*exports*/, v8::Local<v8::Value> /*module*/, void* /*priv*/) {
	node::AddEnvironmentCleanupHook(v8::Isolate::GetCurrent(), [](void* isolate) {
		static_cast<v8::Isolate*>(isolate)->LowMemoryNotification();
		std::puts("collected after isolated-vm's cleanup");
		std::fflush(stdout);
	}, v8::Isolate::GetCurrent());
}

NODE_MODULE_CONTEXT_AWARE(gc_after_cleanup, Init)
