{
  # Batch consume and produce on @confluentinc/kafka-javascript's own clients
  # (src/kafka_batch.cc). It calls librdkafka on the clients' handles, so it
  # must load the very librdkafka.so.1 that library loaded: its dynamic build
  # (CKJS_LINKING=dynamic, as scripts/setup.sh installs it), checked by
  # check-linking.mjs before the build.
  "variables": {
    "ckjs%": "<!(node -p \"require('path').dirname(require.resolve('@confluentinc/kafka-javascript/package.json'))\")",
    "nan%": "<!(node -p \"require('path').dirname(require.resolve('nan/package.json'))\")"
  },
  "targets": [
    {
      "target_name": "kafka_batch",
      "sources": ["src/kafka_batch.cc"],
      "include_dirs": ["<(nan)", "<(ckjs)", "<(ckjs)/deps/librdkafka/src", "<(ckjs)/deps/librdkafka/src-cpp"],
      "cflags_cc!": ["-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++20", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-cast-function-type", "-Wno-ignored-qualifiers"],
      "libraries": ["<(ckjs)/build/deps/librdkafka.so", "-Wl,-rpath,<(ckjs)/build/deps"]
    }
  ]
}
