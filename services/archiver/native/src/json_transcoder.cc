// SPDX-License-Identifier: Apache-2.0
// The archiver's hot path: one Avro single-object record straight to its JSON
// line, bytes to bytes. src/transcode.ts compiles the reader schema into a
// flat program (constant JSON text, value, constant, value, ..., constant)
// and hands it to this interpreter once; every record is then one call.
// The output is byte-for-byte JSON.stringify(codec.decode(bytes)) (the unit
// test holds it to that); whatever is unusual answers -1 and the caller takes
// the codec's path: a header that is not the current schema's, a string that
// is not well-formed UTF-8, a long past 2^52 (avsc's own limit for numbers),
// an int out of range, a bad enum index, truncated or trailing bytes.
//
// JS surface (wrapped by src/transcode.ts):
//   transcoder(kinds: Uint8Array, consts: Buffer[kinds.length + 1],
//              symbols: (Buffer[] | undefined)[kinds.length],
//              header: Buffer, mark: number, marks: Int32Array(2)) -> run
//   run(src: Buffer, out: Buffer, at: number) -> end | -1
//     writes the line at out[at..end); the marked string's characters (no
//     quotes) sit at out[marks[0]..marks[1]). Throws RangeError when `out`
//     lacks run.fixedBytes + 6 * src.length bytes from `at`.
//   run.fixedBytes: the most output a record adds beyond 6 bytes per input byte
// The program belongs to its `run` function (freed with it): a plain N-API
// function with the program as its data, as it runs once per record.
#include <napi.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

enum Kind : uint8_t { kString = 0, kInt = 1, kLong = 2, kEnum = 3 };

// Per byte of a string: 0 copies as it is, 1 is escaped (JSON.stringify's
// form), 2 starts or continues a UTF-8 sequence.
struct ByteClasses {
  uint8_t cls[256];
  std::string escape[0x60];
  ByteClasses() {
    static const char hex[] = "0123456789abcdef";
    for (int c = 0; c < 256; c++) cls[c] = c < 0x20 || c == '"' || c == '\\' ? 1 : c >= 0x80 ? 2 : 0;
    for (int c = 0; c < 0x60; c++) escape[c] = std::string("\\u00") + hex[c >> 4] + hex[c & 15];
    escape['\b'] = "\\b";
    escape['\t'] = "\\t";
    escape['\n'] = "\\n";
    escape['\f'] = "\\f";
    escape['\r'] = "\\r";
    escape['"'] = "\\\"";
    escape['\\'] = "\\\\";
  }
};
const ByteClasses kBytes;

// The longest escape (\u00xx) per input byte: the bound transcode.ts reserves.
constexpr size_t kMaxPerByte = 6;
constexpr uint64_t kTwo53 = uint64_t(1) << 53;

// The length of the well-formed UTF-8 sequence at s[i] (a byte >= 0x80), or 0
// (Unicode Table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF).
size_t Utf8Length(const uint8_t* s, size_t i, size_t end) {
  auto cont = [&](size_t at, uint8_t lo = 0x80, uint8_t hi = 0xbf) { return at < end && s[at] >= lo && s[at] <= hi; };
  const uint8_t c = s[i];
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    const bool ok = c == 0xe0 ? cont(i + 1, 0xa0) : c == 0xed ? cont(i + 1, 0x80, 0x9f) : cont(i + 1);
    return ok && cont(i + 2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const bool ok = c == 0xf0 ? cont(i + 1, 0x90) : c == 0xf4 ? cont(i + 1, 0x80, 0x8f) : cont(i + 1);
    return ok && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0;
}

// s[pos..end) as the characters of a JSON string at out + p; returns the new
// end of the output, or SIZE_MAX for bytes that are not well-formed UTF-8.
size_t CopyString(const uint8_t* s, size_t pos, size_t end, uint8_t* out, size_t p) {
  while (pos < end) {
    size_t run = pos;
    while (run < end && kBytes.cls[s[run]] == 0) run++;
    std::memcpy(out + p, s + pos, run - pos);
    p += run - pos;
    pos = run;
    if (pos == end) break;
    const uint8_t c = s[pos];
    if (kBytes.cls[c] == 1) {
      const std::string& e = kBytes.escape[c];
      std::memcpy(out + p, e.data(), e.size());
      p += e.size();
      pos++;
    } else {
      const size_t len = Utf8Length(s, pos, end);
      if (len == 0) return SIZE_MAX;
      std::memcpy(out + p, s + pos, len);
      p += len;
      pos += len;
    }
  }
  return p;
}

size_t WriteNumber(uint8_t* out, size_t p, int64_t value) {
  uint64_t v = value < 0 ? uint64_t(0) - uint64_t(value) : uint64_t(value);
  if (value < 0) out[p++] = '-';
  char digits[20];
  int n = 0;
  do {
    digits[n++] = char('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (n > 0) out[p++] = uint8_t(digits[--n]);
  return p;
}

// One compiled program: what `run` interprets.
class Transcoder {
 public:
  // transcoder(kinds, consts, symbols, header, mark, marks) -> run
  static Napi::Value Compile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 6 || !info[0].IsTypedArray() || !info[1].IsArray() || !info[2].IsArray() || !info[3].IsBuffer() ||
        !info[4].IsNumber() || !info[5].IsTypedArray())
      throw Napi::TypeError::New(env, "transcoder(kinds, consts, symbols, header, mark, marks)");
    auto kinds = info[0].As<Napi::Uint8Array>();
    auto consts = info[1].As<Napi::Array>();
    auto symbols = info[2].As<Napi::Array>();
    auto header = info[3].As<Napi::Buffer<uint8_t>>();
    auto marks = info[5].As<Napi::Int32Array>();
    if (consts.Length() != kinds.ElementLength() + 1 || symbols.Length() != kinds.ElementLength() || marks.ElementLength() < 2)
      throw Napi::RangeError::New(env, "transcoder: consts must have one more entry than kinds, symbols as many, marks two");
    auto t = std::make_unique<Transcoder>();
    t->kinds_.assign(kinds.Data(), kinds.Data() + kinds.ElementLength());
    t->header_.assign(header.Data(), header.Data() + header.Length());
    t->mark_ = info[4].As<Napi::Number>().Int64Value();
    for (uint32_t i = 0; i < consts.Length(); i++) {
      t->consts_.push_back(BufferText(env, consts[i], "consts"));
      t->fixed_ += t->consts_.back().size();
    }
    t->symbols_.resize(t->kinds_.size());
    for (uint32_t k = 0; k < t->kinds_.size(); k++) {
      if (t->kinds_[k] > kEnum) throw Napi::RangeError::New(env, "transcoder: unknown kind");
      size_t widest = t->kinds_[k] == kString ? 2 : 20;  // the quotes; sign and digits of an int64
      if (t->kinds_[k] == kEnum) {
        Napi::Value list = symbols[k];
        if (!list.IsArray()) throw Napi::TypeError::New(env, "transcoder: an enum needs its symbols");
        auto arr = list.As<Napi::Array>();
        widest = 0;
        for (uint32_t j = 0; j < arr.Length(); j++) {
          t->symbols_[k].push_back(BufferText(env, arr[j], "symbols"));
          widest = std::max(widest, t->symbols_[k].back().size());
        }
      }
      t->fixed_ += widest;
    }
    t->marks_ref_ = Napi::Persistent(marks);
    t->marks_ = marks.Data();

    napi_value fn;
    NAPI_THROW_IF_FAILED(env, napi_create_function(env, "run", NAPI_AUTO_LENGTH, Run, t.get(), &fn), Napi::Value());
    NAPI_THROW_IF_FAILED(env, napi_add_finalizer(env, fn, t.get(), Free, nullptr, nullptr), Napi::Value());
    const size_t fixed = t.release()->fixed_;
    Napi::Function run(env, fn);
    run.Set("fixedBytes", Napi::Number::New(env, double(fixed)));
    return run;
  }

 private:
  static std::string BufferText(Napi::Env env, Napi::Value v, const char* what) {
    if (!v.IsBuffer()) throw Napi::TypeError::New(env, std::string("transcoder: ") + what + " must be Buffers");
    auto b = v.As<Napi::Buffer<char>>();
    return std::string(b.Data(), b.Length());
  }

  static void Free(napi_env, void* data, void*) { delete static_cast<Transcoder*>(data); }

  // run(src, out, at)
  static napi_value Run(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3];
    void* self = nullptr;
    void* src = nullptr;
    void* out = nullptr;
    size_t n = 0, out_len = 0;
    int64_t at = -1;
    if (napi_get_cb_info(env, info, &argc, argv, nullptr, &self) != napi_ok || argc < 3 ||
        napi_get_buffer_info(env, argv[0], &src, &n) != napi_ok || napi_get_buffer_info(env, argv[1], &out, &out_len) != napi_ok ||
        napi_get_value_int64(env, argv[2], &at) != napi_ok) {
      napi_throw_type_error(env, nullptr, "run(src: Buffer, out: Buffer, at: number)");
      return nullptr;
    }
    const Transcoder* t = static_cast<const Transcoder*>(self);
    if (at < 0 || size_t(at) > out_len || out_len - size_t(at) < t->fixed_ + kMaxPerByte * n) {
      napi_throw_range_error(env, nullptr, "run: out lacks room for the record's JSON");
      return nullptr;
    }
    const int64_t end = t->Transcode(static_cast<const uint8_t*>(src), n, static_cast<uint8_t*>(out), size_t(at));
    napi_value result;
    napi_create_int64(env, end, &result);
    return result;
  }

  // A zigzag varint (ints and longs, enum indexes, string lengths) below 2^53:
  // avsc reads larger longs its own way, so the codec decides those.
  static bool ReadVarint(const uint8_t* s, size_t n, size_t& pos, uint64_t& raw) {
    raw = 0;
    for (int i = 0; i < 9; i++) {
      if (pos >= n) return false;
      const uint8_t b = s[pos++];
      raw |= uint64_t(b & 0x7f) << (7 * i);
      if (!(b & 0x80)) return raw < kTwo53;
    }
    return false;
  }

  int64_t Transcode(const uint8_t* src, size_t n, uint8_t* out, size_t p) const {
    const size_t h = header_.size();
    if (n < h || std::memcmp(src, header_.data(), h) != 0) return -1;
    size_t pos = h;
    for (size_t k = 0; k < kinds_.size(); k++) {
      std::memcpy(out + p, consts_[k].data(), consts_[k].size());
      p += consts_[k].size();
      uint64_t raw;
      if (!ReadVarint(src, n, pos, raw)) return -1;
      const int64_t value = raw & 1 ? -int64_t((raw + 1) >> 1) : int64_t(raw >> 1);
      switch (kinds_[k]) {
        case kString: {
          if (value < 0 || uint64_t(value) > n - pos) return -1;
          const size_t end = pos + size_t(value);
          out[p++] = '"';
          if (int64_t(k) == mark_) marks_[0] = int32_t(p);
          p = CopyString(src, pos, end, out, p);
          if (p == SIZE_MAX) return -1;
          if (int64_t(k) == mark_) marks_[1] = int32_t(p);
          out[p++] = '"';
          pos = end;
          break;
        }
        case kInt:
          if (value < INT32_MIN || value > INT32_MAX) return -1;
          p = WriteNumber(out, p, value);
          break;
        case kLong:
          p = WriteNumber(out, p, value);
          break;
        default: {
          if (value < 0 || uint64_t(value) >= symbols_[k].size()) return -1;
          const std::string& sym = symbols_[k][size_t(value)];
          std::memcpy(out + p, sym.data(), sym.size());
          p += sym.size();
        }
      }
    }
    const std::string& tail = consts_[kinds_.size()];
    std::memcpy(out + p, tail.data(), tail.size());
    p += tail.size();
    return pos == n ? int64_t(p) : -1;
  }

  std::vector<uint8_t> kinds_;
  /** consts_[k] is written before value k; consts_[kinds_.size()] closes the record. */
  std::vector<std::string> consts_;
  std::vector<std::vector<std::string>> symbols_;
  std::vector<uint8_t> header_;
  int64_t mark_ = -1;
  size_t fixed_ = 0;
  Napi::Reference<Napi::Int32Array> marks_ref_;
  int32_t* marks_ = nullptr;
};

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("transcoder", Napi::Function::New<Transcoder::Compile>(env, "transcoder"));
  return exports;
}

NODE_API_MODULE(json_transcoder, Init)
