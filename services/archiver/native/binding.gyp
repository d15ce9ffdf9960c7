{
  # The archiver's hot path, Avro record -> JSON line (src/json_transcoder.cc),
  # run by src/transcode.ts on the program it compiles from the schema.
  "targets": [
    {
      "target_name": "json_transcoder",
      "sources": ["src/json_transcoder.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wall", "-Wextra"]
    }
  ]
}
