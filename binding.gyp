{
  "targets": [
    {
      "target_name": "secp256k1_native",
      "sources": ["native/secp256k1.c"],
      "libraries": ["-lsecp256k1"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
