// Batch consume and produce on @confluentinc/kafka-javascript's native clients.
//
// That library's consume(N) hands every message to JavaScript as an object
// with Buffers of its own (a malloc, a copy and a weak backing store each),
// then emits it as an event; its produce() is one call per message. On the
// enricher's and the archiver's data paths those costs outweighed the work.
// These two functions drive the same clients (their rd_kafka_t handles), a
// batch per call:
//
// - consume(client, max, timeoutMs, cb): up to `max` messages of the
//   consumer's queue in ONE Buffer (per message a fixed header, then its key,
//   value and headers: the layout below, read by src/kafka-batch.ts). It runs
//   on the libuv pool as the library's own consume() does, and
//   rd_kafka_consume_batch_queue() serves rebalances, offset commits and
//   errors on the way as rd_kafka_consumer_poll() does. It waits `timeoutMs`
//   for the first message only, then takes what is ready.
// - produce(client, topic, partitions, keys, values, headers, from): the
//   messages from index `from` on, copied into librdkafka's queue; returns
//   the index of the first one not queued (the queue was full).
//
// Both hold the client's connection lock for reading, as the library's calls
// do, so that disconnect() never frees the handle under them.
#include <nan.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "rdkafka.h"
#include "src/connection.h"

namespace {

// The members of the library's Connection this addon needs (protected
// there). A pointer to a member, named through a derived class, is plain C++.
struct Members : NodeKafka::Connection {
  static constexpr auto client = &Members::m_client;
  static constexpr auto closing = &Members::m_is_closing;
  static constexpr auto lock = &Members::m_connection_lock;
};

// Layout of one consumed message in the batch Buffer (little endian):
//   0 int32 partition       4 int32 topic (index into the topic names)
//   8 float64 offset       16 float64 timestamp (ms, -1 when none)
//  24 int32 key length     28 int32 value length (-1: null)
//  32 int32 header count   36 int32 header bytes
//  40 key, value, then per header: uint32 name length, name,
//     int32 value length (-1: null), value
constexpr size_t kHeaderBytes = 40;

// Holds a client's connection lock for reading while in scope.
class ReadLock {
 public:
  explicit ReadLock(NodeKafka::Connection *c) : lock_(&(c->*Members::lock)) { uv_rwlock_rdlock(lock_); }
  ~ReadLock() { uv_rwlock_rdunlock(lock_); }
  ReadLock(const ReadLock &) = delete;
  ReadLock &operator=(const ReadLock &) = delete;

 private:
  uv_rwlock_t *lock_;
};

// The handle of a connected client (the caller holds its lock), else null.
rd_kafka_t *handleOf(NodeKafka::Connection *c) {
  RdKafka::Handle *h = c->*Members::client;
  return (c->*Members::closing || h == nullptr) ? nullptr : h->c_ptr();
}

// The library's client behind a JavaScript object (its `_client`), checked to
// be of the class expected.
NodeKafka::Connection *unwrap(v8::Local<v8::Value> value, const char *expected) {
  if (!value->IsObject()) return nullptr;
  v8::Local<v8::Object> obj = value.As<v8::Object>();
  Nan::Utf8String name(obj->GetConstructorName());
  if (obj->InternalFieldCount() < 1 || std::strcmp(*name, expected) != 0) return nullptr;
  return Nan::ObjectWrap::Unwrap<NodeKafka::Connection>(obj);
}

v8::Local<v8::Value> kafkaError(rd_kafka_resp_err_t code, const std::string &message) {
  v8::Local<v8::Value> err = Nan::Error(message.c_str());
  Nan::Set(err.As<v8::Object>(), Nan::New("code").ToLocalChecked(), Nan::New(static_cast<int32_t>(code)));
  return err;
}

struct MessageError {
  rd_kafka_resp_err_t code;
  std::string message;
  std::string topic;
  int32_t partition;
  int64_t offset;
};

void put32(char *p, int32_t v) { std::memcpy(p, &v, 4); }
void putDouble(char *p, double v) { std::memcpy(p, &v, 8); }

size_t headerBytes(rd_kafka_headers_t *hdrs, int32_t *count) {
  size_t bytes = 0;
  *count = 0;
  if (hdrs == nullptr) return 0;
  const char *name;
  const void *value;
  size_t size;
  for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
    bytes += 8 + std::strlen(name) + (value ? size : 0);
    (*count)++;
  }
  return bytes;
}

class ConsumeWorker : public Nan::AsyncWorker {
 public:
  ConsumeWorker(Nan::Callback *callback, NodeKafka::Connection *client, uint32_t max, int timeoutMs)
      : Nan::AsyncWorker(callback, "netmon:kafka-batch-consume"), client_(client), max_(max), timeoutMs_(timeoutMs) {}

  ~ConsumeWorker() override { std::free(data_); }

  void Execute() override {
    ReadLock lock(client_);
    rd_kafka_t *rk = handleOf(client_);
    if (rk == nullptr) return fail(RD_KAFKA_RESP_ERR__STATE, "KafkaConsumer is not connected");
    rd_kafka_queue_t *queue = rd_kafka_queue_get_consumer(rk);
    if (queue == nullptr) return fail(RD_KAFKA_RESP_ERR__STATE, "the client has no consumer queue (no group.id)");
    std::vector<rd_kafka_message_t *> messages(max_);
    ssize_t n = rd_kafka_consume_batch_queue(queue, timeoutMs_, messages.data(), 1);
    if (n == 1 && max_ > 1) {
      ssize_t more = rd_kafka_consume_batch_queue(queue, 0, messages.data() + 1, max_ - 1);
      if (more > 0) n += more;
    }
    rd_kafka_queue_destroy(queue);
    if (n < 0) return fail(rd_kafka_last_error(), rd_kafka_err2str(rd_kafka_last_error()));
    pack(messages.data(), static_cast<size_t>(n));
    for (ssize_t i = 0; i < n; i++) rd_kafka_message_destroy(messages[i]);
  }

  void HandleOKCallback() override {
    Nan::HandleScope scope;
    if (code_ != RD_KAFKA_RESP_ERR_NO_ERROR) {
      v8::Local<v8::Value> argv[] = {kafkaError(code_, failure_)};
      callback->Call(1, argv, async_resource);
      return;
    }
    v8::Local<v8::Array> topics = Nan::New<v8::Array>(topicNames_.size());
    for (size_t i = 0; i < topicNames_.size(); i++) Nan::Set(topics, i, Nan::New(topicNames_[i]).ToLocalChecked());
    v8::Local<v8::Array> errors = Nan::New<v8::Array>(errors_.size());
    for (size_t i = 0; i < errors_.size(); i++) {
      const MessageError &e = errors_[i];
      v8::Local<v8::Object> o = kafkaError(e.code, e.message).As<v8::Object>();
      Nan::Set(o, Nan::New("topic").ToLocalChecked(), Nan::New(e.topic).ToLocalChecked());
      Nan::Set(o, Nan::New("partition").ToLocalChecked(), Nan::New(e.partition));
      Nan::Set(o, Nan::New("offset").ToLocalChecked(), Nan::New(static_cast<double>(e.offset)));
      Nan::Set(errors, i, o);
    }
    // The Buffer takes the allocation (and frees it with free()).
    v8::Local<v8::Object> buffer = Nan::NewBuffer(data_, static_cast<uint32_t>(size_)).ToLocalChecked();
    data_ = nullptr;
    v8::Local<v8::Value> argv[] = {Nan::Null(), buffer, Nan::New(count_), topics, errors};
    callback->Call(5, argv, async_resource);
  }

 private:
  void fail(rd_kafka_resp_err_t code, const std::string &message) {
    code_ = code;
    failure_ = message;
  }

  int32_t topicIndex(rd_kafka_topic_t *rkt) {
    for (size_t i = 0; i < topics_.size(); i++)
      if (topics_[i] == rkt) return static_cast<int32_t>(i);
    topics_.push_back(rkt);
    topicNames_.emplace_back(rd_kafka_topic_name(rkt));
    return static_cast<int32_t>(topics_.size() - 1);
  }

  void pack(rd_kafka_message_t **messages, size_t n) {
    // Each message's headers, measured once: for the total here, for its fixed header below.
    struct Headers {
      rd_kafka_headers_t *list = nullptr;
      int32_t count = 0;
      size_t bytes = 0;
    };
    std::vector<Headers> headers(n);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
      rd_kafka_message_t *m = messages[i];
      if (m->err) {
        errors_.push_back({m->err, rd_kafka_message_errstr(m), m->rkt ? rd_kafka_topic_name(m->rkt) : "", m->partition, m->offset});
        continue;
      }
      Headers &h = headers[i];
      if (rd_kafka_message_headers(m, &h.list) != RD_KAFKA_RESP_ERR_NO_ERROR) h.list = nullptr;
      h.bytes = headerBytes(h.list, &h.count);
      total += kHeaderBytes + m->key_len + m->len + h.bytes;
    }
    data_ = static_cast<char *>(std::malloc(total > 0 ? total : 1));
    size_ = total;
    char *p = data_;
    for (size_t i = 0; i < n; i++) {
      rd_kafka_message_t *m = messages[i];
      if (m->err) continue;
      rd_kafka_timestamp_type_t type;
      int64_t timestamp = rd_kafka_message_timestamp(m, &type);
      const Headers &h = headers[i];
      put32(p, m->partition);
      put32(p + 4, topicIndex(m->rkt));
      putDouble(p + 8, static_cast<double>(m->offset));
      putDouble(p + 16, static_cast<double>(timestamp));
      put32(p + 24, m->key ? static_cast<int32_t>(m->key_len) : -1);
      put32(p + 28, m->payload ? static_cast<int32_t>(m->len) : -1);
      put32(p + 32, h.count);
      put32(p + 36, static_cast<int32_t>(h.bytes));
      p += kHeaderBytes;
      if (m->key) std::memcpy(p, m->key, m->key_len), p += m->key_len;
      if (m->payload) std::memcpy(p, m->payload, m->len), p += m->len;
      const char *name;
      const void *value;
      size_t size;
      for (size_t j = 0; h.list && rd_kafka_header_get_all(h.list, j, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; j++) {
        size_t nameLen = std::strlen(name);
        put32(p, static_cast<int32_t>(nameLen));
        std::memcpy(p + 4, name, nameLen);
        p += 4 + nameLen;
        put32(p, value ? static_cast<int32_t>(size) : -1);
        p += 4;
        if (value) std::memcpy(p, value, size), p += size;
      }
      count_++;
    }
  }

  NodeKafka::Connection *client_;
  uint32_t max_;
  int timeoutMs_;
  rd_kafka_resp_err_t code_ = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::string failure_;
  char *data_ = nullptr;
  size_t size_ = 0;
  int32_t count_ = 0;
  std::vector<rd_kafka_topic_t *> topics_;
  std::vector<std::string> topicNames_;
  std::vector<MessageError> errors_;
};

// consume(client, max, timeoutMs, cb(err, buffer, count, topics, errors))
NAN_METHOD(Consume) {
  NodeKafka::Connection *client = unwrap(info[0], "KafkaConsumer");
  if (client == nullptr) return Nan::ThrowTypeError("consume: the first argument must be a KafkaConsumer's native client (its _client)");
  if (!info[1]->IsUint32() || !info[2]->IsInt32() || !info[3]->IsFunction())
    return Nan::ThrowTypeError("consume(client, max, timeoutMs, callback)");
  uint32_t max = Nan::To<uint32_t>(info[1]).FromJust();
  if (max == 0) return Nan::ThrowRangeError("consume: max must be at least 1");
  auto *worker = new ConsumeWorker(new Nan::Callback(info[3].As<v8::Function>()), client, max, Nan::To<int32_t>(info[2]).FromJust());
  worker->SaveToPersistent("client", info[0].As<v8::Object>());
  Nan::AsyncQueueWorker(worker);
}

// Bytes of a Buffer argument; null/undefined give no bytes.
bool bytesOf(v8::Local<v8::Value> v, const char **data, size_t *len) {
  if (node::Buffer::HasInstance(v)) {
    *data = node::Buffer::Data(v);
    *len = node::Buffer::Length(v);
    return true;
  }
  *data = nullptr;
  *len = 0;
  return v->IsNullOrUndefined();
}

// A message's headers: a flat array [name, value, name, value, ...] of
// strings and Buffers (or null values). Null when it has none.
rd_kafka_headers_t *headersOf(v8::Local<v8::Value> v) {
  if (!v->IsArray()) return nullptr;
  v8::Local<v8::Array> list = v.As<v8::Array>();
  uint32_t n = list->Length();
  rd_kafka_headers_t *hdrs = rd_kafka_headers_new(n / 2);
  for (uint32_t i = 0; i + 1 < n; i += 2) {
    Nan::Utf8String name(Nan::Get(list, i).ToLocalChecked());
    v8::Local<v8::Value> value = Nan::Get(list, i + 1).ToLocalChecked();
    if (value->IsString()) {
      Nan::Utf8String s(value);
      rd_kafka_header_add(hdrs, *name, name.length(), *s, s.length());
    } else {
      const char *data;
      size_t len;
      bytesOf(value, &data, &len);
      rd_kafka_header_add(hdrs, *name, name.length(), data, data ? static_cast<ssize_t>(len) : 0);
    }
  }
  return hdrs;
}

// produce(client, topic, partitions: Int32Array (-1: the partitioner's),
//         keys: (Buffer|null)[], values: (Buffer|null)[],
//         headers: (Array|undefined)[] | null, from) → the first index not queued
NAN_METHOD(Produce) {
  NodeKafka::Connection *client = unwrap(info[0], "Producer");
  if (client == nullptr) return Nan::ThrowTypeError("produce: the first argument must be a Producer's native client (its _client)");
  if (!info[1]->IsString() || !info[2]->IsInt32Array() || !info[3]->IsArray() || !info[4]->IsArray() || !info[6]->IsUint32())
    return Nan::ThrowTypeError("produce(client, topic, partitions, keys, values, headers, from)");
  Nan::Utf8String topic(info[1]);
  Nan::TypedArrayContents<int32_t> partitions(info[2]);
  v8::Local<v8::Array> keys = info[3].As<v8::Array>();
  v8::Local<v8::Array> values = info[4].As<v8::Array>();
  bool withHeaders = info[5]->IsArray();
  v8::Local<v8::Array> headers = withHeaders ? info[5].As<v8::Array>() : v8::Local<v8::Array>();
  uint32_t n = values->Length();
  if (keys->Length() != n || partitions.length() != n || (withHeaders && headers->Length() != n))
    return Nan::ThrowRangeError("produce: partitions, keys, values (and headers) must be as long as each other");

  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  uint32_t i = Nan::To<uint32_t>(info[6]).FromJust();
  {
    ReadLock lock(client);
    rd_kafka_t *rk = handleOf(client);
    if (rk == nullptr) return Nan::ThrowError(kafkaError(RD_KAFKA_RESP_ERR__STATE, "Producer is not connected"));
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, *topic, nullptr);
    if (rkt == nullptr) return Nan::ThrowError(kafkaError(rd_kafka_last_error(), std::string("topic ") + *topic + ": " + rd_kafka_err2str(rd_kafka_last_error())));
    for (; i < n; i++) {
      const char *key, *value;
      size_t keyLen, valueLen;
      if (!bytesOf(Nan::Get(keys, i).ToLocalChecked(), &key, &keyLen) || !bytesOf(Nan::Get(values, i).ToLocalChecked(), &value, &valueLen)) {
        rd_kafka_topic_destroy(rkt);
        return Nan::ThrowTypeError(("produce: message " + std::to_string(i) + ": keys and values must be Buffers or null").c_str());
      }
      rd_kafka_headers_t *hdrs = withHeaders ? headersOf(Nan::Get(headers, i).ToLocalChecked()) : nullptr;
      err = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION((*partitions)[i]), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_KEY(key, keyLen), RD_KAFKA_V_VALUE(const_cast<char *>(value), valueLen), RD_KAFKA_V_HEADERS(hdrs),
                              RD_KAFKA_V_END);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (hdrs) rd_kafka_headers_destroy(hdrs);  // not taken on failure
        break;
      }
    }
    rd_kafka_topic_destroy(rkt);
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
    return Nan::ThrowError(kafkaError(err, std::string("producing to ") + *topic + ": " + rd_kafka_err2str(err)));
  info.GetReturnValue().Set(i);
}

// The librdkafka this addon calls (the library's own, when linked right).
NAN_METHOD(Version) { info.GetReturnValue().Set(Nan::New(rd_kafka_version_str()).ToLocalChecked()); }

}  // namespace

NAN_MODULE_INIT(Init) {
  Nan::SetMethod(target, "consume", Consume);
  Nan::SetMethod(target, "produce", Produce);
  Nan::SetMethod(target, "librdkafkaVersion", Version);
}

NODE_MODULE(kafka_batch, Init)
