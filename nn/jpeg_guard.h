// A check of JPEG bytes before stb_image sees them.
//
// Debian's stb_image (v2.27) builds each Huffman table of a DHT segment without checking that
// its 16 code counts sum to at most 256: a corrupt or hostile JPEG writes up to 3,800 bytes past
// the table's arrays (found by tools/fuzz.sh; upstream added the check in v2.28). The check
// below finds every DHT segment stb could read and refuses a table of more than 256 codes.
// Nor does it check that a scan's Huffman tables were defined: a scan selecting a table no DHT
// segment defined decodes with uninitialised memory (found in review); such a scan is refused
// too.
#pragma once
#include <string>

namespace fragile::nn {

// Empty when stb may decode `bytes`; else what is wrong, e.g. "a Huffman table of 2040 codes
// (at most 256) at byte 6" or "a scan at byte 1027 decodes with AC Huffman table 3, which no
// DHT segment defined". Only what stb would read as JPEG (0xFF bytes, then D8) is examined.
std::string jpeg_huffman_problem(const std::string& bytes);

}  // namespace fragile::nn
