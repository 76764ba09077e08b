// Step-journal windows mapped into memory (native/journal.cpp).
#pragma once

#include <napi.h>

namespace wpipe {

Napi::Value MapJournal(const Napi::CallbackInfo& info);
Napi::Value UnmapJournal(const Napi::CallbackInfo& info);

}  // namespace wpipe
