{
  "targets": [
    {
      # The archiver's hot path, Avro record -> JSON line (src/json_transcoder.cc),
      # run by src/transcode.ts on the program it compiles from the schema.
      "target_name": "json_transcoder",
      "sources": ["src/json_transcoder.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wall", "-Wextra"]
    },
    {
      # One gzip member compressed in pieces (src/gzip_member.cc) with the
      # vendored libdeflate 1.14 (MIT, vendor/libdeflate/COPYING; Debian's
      # source, plus libdeflate_deflate_compress_sync).
      "target_name": "gzip_member",
      "sources": [
        "src/gzip_member.cc",
        "vendor/libdeflate/lib/deflate_compress.c",
        "vendor/libdeflate/lib/crc32.c",
        "vendor/libdeflate/lib/utils.c",
        "vendor/libdeflate/lib/x86/cpu_features.c",
        "vendor/libdeflate/lib/arm/cpu_features.c"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "vendor/libdeflate"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags": ["-O2", "-fvisibility=hidden"],
      "cflags_c": ["-Wno-sign-compare"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra"]
    }
  ]
}
