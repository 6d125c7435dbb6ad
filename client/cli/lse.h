// The log-sum-exp an `an1 attention --return-lse` call got back: a one-line summary, and with
// --lse-out a float32 .npy file.
#pragma once

#include <optional>
#include <string>

#include "client/cli/cli_common.h"

namespace an1::cli {

// Prints "lse: fp32 (B, H, Sq): min .. max .. over N finite rows, M rows -inf (see no key)" and,
// when `path` is not empty, writes the LSE there as a float32 .npy file. Returns 0, or 1 after
// printing the error (also when the server sent no LSE).
int ReportLse(const std::optional<HostTensor>& lse, const std::string& path);

}  // namespace an1::cli
