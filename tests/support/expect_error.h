// EXPECT_ERROR_WITH(statement, "part", ...): the statement throws fragile::Error and its message
// contains every part (an error must say what is wrong and where).
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

// Expects `stmt` to throw fragile::Error whose message contains every one of `parts`.
#define EXPECT_ERROR_WITH(stmt, ...)                                                     \
  do {                                                                                   \
    try {                                                                                \
      stmt;                                                                              \
      ADD_FAILURE() << "expected fragile::Error from " #stmt;                            \
    } catch (const ::fragile::Error& e) {                                                \
      for (const char* part : {__VA_ARGS__}) {                                           \
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos)                   \
            << "message lacks '" << part << "': " << e.what();                           \
      }                                                                                  \
    }                                                                                    \
  } while (0)
