{
  "targets": [
    {
      "target_name": "wsgid_native",
      "sources": ["chroot.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
