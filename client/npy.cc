#include "client/npy.h"

#include <cstring>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>

#include "client/elements.h"

namespace an1::client {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;
constexpr std::size_t kMaxHeaderBytes = 1 << 20;

bool Fail(std::string* error, const std::string& path, const std::string& what) {
  *error = path + ": " + what;
  return false;
}

std::size_t DescrSize(const std::string& descr) {
  if (descr == "<f2") return 2;
  if (descr == "<f4") return 4;
  if (descr == "<f8") return 8;
  if (descr == "<i4") return 4;
  return 0;
}

// Parses the header dict, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
bool ParseHeader(const std::string& header, NpyArray* array, std::string* what) {
  std::smatch m;
  if (!std::regex_search(header, m, std::regex(R"('descr'\s*:\s*'([^']*)')"))) {
    *what = "header has no 'descr'";
    return false;
  }
  array->descr = m[1];
  if (array->descr == "|f2" || array->descr == "=f2") array->descr = "<f2";
  if (std::regex_search(header, std::regex(R"('fortran_order'\s*:\s*True)"))) {
    *what = "Fortran-ordered arrays are not supported; save with np.ascontiguousarray";
    return false;
  }
  if (!std::regex_search(header, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))"))) {
    *what = "header has no 'shape'";
    return false;
  }
  array->shape.clear();
  std::stringstream dims(m[1].str());
  std::string item;
  while (std::getline(dims, item, ',')) {
    if (item.find_first_not_of(" \t") == std::string::npos) continue;
    try {
      array->shape.push_back(std::stoll(item));
    } catch (const std::exception&) {
      *what = "bad shape entry '" + item + "'";
      return false;
    }
  }
  return true;
}

}  // namespace

bool ReadNpy(const std::string& path, NpyArray* array, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(error, path, "cannot open");
  char prefix[kMagicSize + 2];
  if (!in.read(prefix, sizeof(prefix)) || std::memcmp(prefix, kMagic, kMagicSize) != 0) {
    return Fail(error, path, "not a .npy file");
  }
  const int major = static_cast<unsigned char>(prefix[kMagicSize]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char len[2];
    if (!in.read(reinterpret_cast<char*>(len), 2)) return Fail(error, path, "truncated header");
    header_len = len[0] | (len[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char len[4];
    if (!in.read(reinterpret_cast<char*>(len), 4)) return Fail(error, path, "truncated header");
    header_len = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<uint32_t>(len[3]) << 24);
  } else {
    return Fail(error, path, "unsupported .npy version " + std::to_string(major));
  }
  if (header_len > kMaxHeaderBytes) return Fail(error, path, "header too large");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) return Fail(error, path, "truncated header");
  std::string what;
  if (!ParseHeader(header, array, &what)) return Fail(error, path, what);
  const std::size_t element = DescrSize(array->descr);
  if (element == 0) {
    return Fail(
        error, path,
        "dtype '" + array->descr + "' is not supported; use float16, float32, float64 or int32");
  }
  uint64_t count = 1;
  for (int64_t d : array->shape) {
    if (d < 0 || __builtin_mul_overflow(count, static_cast<uint64_t>(d), &count)) {
      return Fail(error, path, "bad shape");
    }
  }
  if (count > std::numeric_limits<std::size_t>::max() / element) {
    return Fail(error, path, "array too large");
  }
  // Compare with what the file holds before allocating anything.
  const std::streampos data_start = in.tellg();
  in.seekg(0, std::ios::end);
  const std::streampos file_end = in.tellg();
  in.seekg(data_start);
  if (file_end - data_start < static_cast<std::streamoff>(count * element)) {
    return Fail(error, path, "file is shorter than its shape says");
  }
  array->data.resize(count * element);
  if (!in.read(array->data.data(), static_cast<std::streamsize>(array->data.size()))) {
    return Fail(error, path, "file is shorter than its shape says");
  }
  return true;
}

bool WriteNpy(const std::string& path, const NpyArray& array, std::string* error) {
  std::string shape;  // "2, 3" or "5," (a one-element tuple needs its comma)
  for (std::size_t i = 0; i < array.shape.size(); ++i) {
    shape += (i ? ", " : "") + std::to_string(array.shape[i]);
  }
  if (array.shape.size() == 1) shape += ",";
  std::string header =
      "{'descr': '" + array.descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  // Pad with spaces so that magic + version + length + header + '\n' is a multiple of 64.
  const std::size_t unpadded = kMagicSize + 2 + 2 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Fail(error, path, "cannot create");
  const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                                static_cast<unsigned char>(header.size() >> 8)};
  out.write(kMagic, kMagicSize);
  out.put(1).put(0);
  out.write(reinterpret_cast<const char*>(len), 2);
  out << header;
  out.write(array.data.data(), static_cast<std::streamsize>(array.data.size()));
  if (!out) return Fail(error, path, "write failed");
  return true;
}

bool NpyToTensor(const NpyArray& array, v1::DType dtype, HostTensor* tensor, std::string* error) {
  const std::size_t element = DescrSize(array.descr);
  if (element == 0 || array.descr == "<i4") {
    *error = "unsupported .npy dtype '" + array.descr + "'";
    return false;
  }
  std::vector<float> values(array.data.size() / element);
  for (std::size_t i = 0; i < values.size(); ++i) {
    const char* p = array.data.data() + i * element;
    if (element == 2) {
      uint16_t bits;
      std::memcpy(&bits, p, 2);
      values[i] = HalfToFloat(bits);
    } else if (element == 4) {
      std::memcpy(&values[i], p, 4);
    } else {
      double d;
      std::memcpy(&d, p, 8);
      values[i] = static_cast<float>(d);
    }
  }
  tensor->dtype = dtype;
  tensor->shape = array.shape;
  tensor->bytes = EncodeElements(values, dtype);
  return true;
}

bool NpyToIndexTensor(const NpyArray& array, HostTensor* tensor, std::string* error) {
  if (array.descr != "<i4") {
    *error = ".npy dtype '" + array.descr + "' is not int32 ('<i4'), as index tensors need";
    return false;
  }
  tensor->dtype = v1::DTYPE_INT32;
  tensor->shape = array.shape;
  tensor->bytes = array.data;
  return true;
}

NpyArray TensorToNpy(const HostTensor& tensor) {
  NpyArray array;
  array.shape = tensor.shape;
  if (tensor.dtype == v1::DTYPE_INT32) {
    array.descr = "<i4";
    array.data = tensor.bytes;
  } else if (tensor.dtype == v1::DTYPE_FP16) {
    array.descr = "<f2";
    array.data = tensor.bytes;
  } else {
    array.descr = "<f4";
    array.data = tensor.dtype == v1::DTYPE_FP32
                     ? tensor.bytes
                     : EncodeElements(DecodeElements(tensor.bytes, tensor.dtype), v1::DTYPE_FP32);
  }
  return array;
}

}  // namespace an1::client
