// .npy reading and writing: round trips, the header variants NumPy writes, and clear errors for
// files the client cannot use.
#include "client/npy.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "client/elements.h"

namespace an1::client {
namespace {

class NpyTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) {
    return (std::filesystem::temp_directory_path() /
            ("an1_npy_test_" + std::to_string(::getpid()) + "_" + name))
        .string();
  }
  void WriteRaw(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
  }
  void TearDown() override {
    for (const auto& entry :
         std::filesystem::directory_iterator(std::filesystem::temp_directory_path())) {
      if (entry.path().filename().string().rfind("an1_npy_test_" + std::to_string(::getpid()), 0) ==
          0) {
        std::filesystem::remove(entry.path());
      }
    }
  }
};

TEST_F(NpyTest, RoundTripsEveryRank) {
  for (std::vector<int64_t> shape :
       std::vector<std::vector<int64_t>>{{}, {5}, {2, 3}, {2, 1, 3, 4}}) {
    NpyArray array{"<f4", shape, std::string()};
    std::size_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> values(n);
    for (std::size_t i = 0; i < n; ++i) values[i] = 0.5f * i;
    array.data = EncodeElements(values, v1::DTYPE_FP32);
    std::string error;
    ASSERT_TRUE(WriteNpy(Path("rt.npy"), array, &error)) << error;
    NpyArray back;
    ASSERT_TRUE(ReadNpy(Path("rt.npy"), &back, &error)) << error;
    EXPECT_EQ(back.descr, "<f4");
    EXPECT_EQ(back.shape, shape);
    EXPECT_EQ(back.data, array.data);
    // The header is padded so that the data starts at a multiple of 64 bytes.
    EXPECT_EQ((std::filesystem::file_size(Path("rt.npy")) - array.data.size()) % 64, 0u);
  }
}

TEST_F(NpyTest, ReadsVersion2HeaderAndFloat64) {
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
  header.append(64 - (12 + header.size() + 1) % 64, ' ');
  header += '\n';
  std::string file = std::string("\x93NUMPY\x02\x00", 8);
  const uint32_t len = static_cast<uint32_t>(header.size());
  file.append(reinterpret_cast<const char*>(&len), 4);
  file += header;
  const double values[2] = {1.5, -2.25};
  file.append(reinterpret_cast<const char*>(values), sizeof(values));
  WriteRaw(Path("v2.npy"), file);
  NpyArray array;
  std::string error;
  ASSERT_TRUE(ReadNpy(Path("v2.npy"), &array, &error)) << error;
  HostTensor tensor;
  ASSERT_TRUE(NpyToTensor(array, v1::DTYPE_FP16, &tensor, &error)) << error;
  EXPECT_EQ(tensor.shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(DecodeElements(tensor.bytes, v1::DTYPE_FP16), (std::vector<float>{1.5f, -2.25f}));
}

TEST_F(NpyTest, TensorToNpyKeepsFp16AndWidensBf16) {
  HostTensor half{v1::DTYPE_FP16, {2}, EncodeElements({1.0f, 2.0f}, v1::DTYPE_FP16)};
  EXPECT_EQ(TensorToNpy(half).descr, "<f2");
  EXPECT_EQ(TensorToNpy(half).data, half.bytes);
  HostTensor bf{v1::DTYPE_BF16, {2}, EncodeElements({1.0f, -3.0f}, v1::DTYPE_BF16)};
  const NpyArray widened = TensorToNpy(bf);
  EXPECT_EQ(widened.descr, "<f4");
  EXPECT_EQ(DecodeElements(widened.data, v1::DTYPE_FP32), (std::vector<float>{1.0f, -3.0f}));
}

TEST_F(NpyTest, RejectsUnusableFiles) {
  std::string error;
  NpyArray array;
  EXPECT_FALSE(ReadNpy(Path("missing.npy"), &array, &error));
  EXPECT_NE(error.find("cannot open"), std::string::npos);

  WriteRaw(Path("text.npy"), "hello world, not numpy");
  EXPECT_FALSE(ReadNpy(Path("text.npy"), &array, &error));
  EXPECT_NE(error.find("not a .npy file"), std::string::npos);

  NpyArray longs{"<i8", {2}, std::string(16, '\0')};
  ASSERT_TRUE(WriteNpy(Path("longs.npy"), longs, &error));
  EXPECT_FALSE(ReadNpy(Path("longs.npy"), &array, &error));
  EXPECT_NE(error.find("'<i8' is not supported"), std::string::npos);

  // int32 reads (paged attention's index tensors), but is no float data.
  NpyArray ints{"<i4", {2}, std::string(8, '\0')};
  ASSERT_TRUE(WriteNpy(Path("ints.npy"), ints, &error));
  ASSERT_TRUE(ReadNpy(Path("ints.npy"), &array, &error)) << error;
  HostTensor tensor;
  EXPECT_FALSE(NpyToTensor(array, v1::DTYPE_FP32, &tensor, &error));
  ASSERT_TRUE(NpyToIndexTensor(array, &tensor, &error)) << error;
  EXPECT_EQ(tensor.dtype, v1::DTYPE_INT32);

  NpyArray floats{"<f4", {4}, std::string(16, '\0')};
  ASSERT_TRUE(WriteNpy(Path("short.npy"), floats, &error));
  std::filesystem::resize_file(Path("short.npy"),
                               std::filesystem::file_size(Path("short.npy")) - 1);
  EXPECT_FALSE(ReadNpy(Path("short.npy"), &array, &error));
  EXPECT_NE(error.find("shorter than its shape"), std::string::npos);

  std::string fortran = std::string("\x93NUMPY\x01\x00", 8);
  std::string header = "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1), }\n";
  fortran += static_cast<char>(header.size());
  fortran += '\0';
  fortran += header + std::string(4, '\0');
  WriteRaw(Path("fortran.npy"), fortran);
  EXPECT_FALSE(ReadNpy(Path("fortran.npy"), &array, &error));
  EXPECT_NE(error.find("Fortran"), std::string::npos);
}

}  // namespace
}  // namespace an1::client
