/* native/notify.c: registers notify() on the addon's exports (called from chroot.c's module init). */
#ifndef WSGID_NOTIFY_H
#define WSGID_NOTIFY_H
#include <node_api.h>
void register_notify(napi_env env, napi_value exports);
#endif
