{
  "targets": [
    {
      "target_name": "wsgid_native",
      "sources": ["chroot.c", "notify.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
