// A block of memory on one device, shared by every tensor view of it.
#pragma once
#include <cstddef>
#include <memory>

#include "core/allocator.h"

namespace fragile {

class Storage {
 public:
  Storage(std::size_t nbytes, Device device)
      : nbytes_(nbytes), device_(device), allocator_(&allocator_for(device)) {
    data_ = allocator_->allocate(nbytes);
  }
  ~Storage() { allocator_->deallocate(data_, nbytes_); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t nbytes_;
  Device device_;
  Allocator* allocator_;  // the one that allocated, so it is also the one that frees
};

}  // namespace fragile
