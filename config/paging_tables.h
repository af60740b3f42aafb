// Readers for the paging option tables, shared by the kvserver and memnode configs.
#pragma once

#include <string>

#include "config/toml_reader.h"
#include "paging/options.h"

namespace fm::config {

/// [paging.verbs] / [verbs]
void read_verbs(TableReader& r, paging::VerbsOptions& v);
/// [paging] with its [paging.emulated] and [paging.verbs] sub-tables.
void read_paging(TableReader& r, std::string_view source, Status* err, paging::PagingOptions& p);
/// The [paging] tables as TOML.
std::string paging_to_toml(const paging::PagingOptions& p);

}  // namespace fm::config
