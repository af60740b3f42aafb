// dpctl's tables and name/value lists.
#include "tools/dpctl/render.h"

#include <fmt/core.h>

#include <algorithm>
#include <set>

namespace fm::dpctl {
namespace {

std::string compact(const Json& v) {
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool is_scalar(const Json& v) { return !v.is_object() && !v.is_array(); }

// The keys of `obj` (or of every object in `rows`): `preferred` ones present first, then the
// rest sorted (nlohmann::json objects iterate in sorted order already).
std::vector<std::string> ordered_keys(const std::vector<const Json*>& objs, const Keys& preferred) {
  std::vector<std::string> keys;
  std::set<std::string, std::less<>> seen;
  for (std::string_view p : preferred) {
    for (const Json* o : objs) {
      if (o->contains(p)) {
        keys.emplace_back(p);
        seen.emplace(p);
        break;
      }
    }
  }
  std::set<std::string> rest;
  for (const Json* o : objs) {
    for (const auto& [k, v] : o->items()) {
      if (!seen.contains(k)) rest.insert(k);
    }
  }
  keys.insert(keys.end(), rest.begin(), rest.end());
  return keys;
}

struct Entry {
  std::string name;
  std::string value;
  bool numeric;
};

void flatten_into(const Json& v, const std::string& name, std::vector<Entry>* out) {
  if (v.is_object() && !v.empty()) {
    for (const auto& [k, x] : v.items()) flatten_into(x, name.empty() ? k : name + "." + k, out);
  } else {
    out->push_back({name, cell(v), v.is_number()});
  }
}

std::vector<Entry> flatten_entries(const Json& obj, const Keys& preferred) {
  std::vector<Entry> out;
  if (!obj.is_object()) {
    out.push_back({"value", cell(obj), obj.is_number()});
    return out;
  }
  for (const std::string& k : ordered_keys({&obj}, preferred)) flatten_into(obj[k], k, &out);
  return out;
}

bool is_table(const Json& v) {
  return v.is_array() && !v.empty() &&
         std::all_of(v.begin(), v.end(), [](const Json& r) { return r.is_object(); });
}

}  // namespace

std::string cell(const Json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array() && std::all_of(v.begin(), v.end(), is_scalar)) {
    if (v.empty()) return "-";
    std::string s;
    for (const Json& x : v) {
      if (!s.empty()) s += ',';
      s += cell(x);
    }
    return s;
  }
  return compact(v);
}

namespace {
std::string render_table(const Json& rows, const Keys& preferred, bool only_preferred) {
  if (!rows.is_array() || rows.empty()) return "(none)\n";
  std::vector<const Json*> objs;
  for (const Json& r : rows) {
    if (r.is_object()) objs.push_back(&r);
  }
  std::vector<std::string> cols;
  if (objs.size() == rows.size()) {
    cols = ordered_keys(objs, preferred);
    if (only_preferred) {
      std::erase_if(cols, [&](const std::string& c) {
        return std::find(preferred.begin(), preferred.end(), c) == preferred.end();
      });
    }
  } else {
    cols = {"value"};
  }
  std::vector<std::vector<std::string>> cells;
  std::vector<size_t> width(cols.size());
  std::vector<bool> numeric(cols.size(), true);
  for (size_t c = 0; c < cols.size(); ++c) width[c] = cols[c].size();
  for (const Json& r : rows) {
    std::vector<std::string> line;
    for (size_t c = 0; c < cols.size(); ++c) {
      const Json* v = &r;
      if (r.is_object()) {
        const auto it = r.find(cols[c]);
        v = it != r.end() ? &*it : nullptr;
      }
      std::string s = v ? cell(*v) : "-";
      if (v && !v->is_null() && !v->is_number()) numeric[c] = false;
      width[c] = std::max(width[c], s.size());
      line.push_back(std::move(s));
    }
    cells.push_back(std::move(line));
  }
  auto emit = [&](std::string* out, const std::vector<std::string>& line) {
    std::string row;
    for (size_t c = 0; c < cols.size(); ++c) {
      const bool last = c + 1 == cols.size();
      if (c > 0) row += "  ";
      if (numeric[c]) {
        row += fmt::format("{:>{}}", line[c], width[c]);
      } else {
        row += last ? line[c] : fmt::format("{:<{}}", line[c], width[c]);
      }
    }
    while (!row.empty() && row.back() == ' ') row.pop_back();
    *out += row;
    *out += '\n';
  };
  std::string out;
  emit(&out, cols);
  for (const auto& line : cells) emit(&out, line);
  return out;
}
}  // namespace

std::string table(const Json& rows, const Keys& preferred) {
  return render_table(rows, preferred, false);
}

std::string table_of(const Json& rows, const Keys& columns) {
  return render_table(rows, columns, true);
}

std::string transposed(const Json& rows, std::string_view id_key, const Keys& skip) {
  if (!rows.is_array() || rows.empty()) return "(none)\n";
  Json side = Json::array();
  std::set<std::string> keys;
  for (const Json& r : rows) {
    if (!r.is_object()) return table(rows);
    for (const auto& [k, v] : r.items()) {
      if (k != id_key && std::find(skip.begin(), skip.end(), k) == skip.end()) keys.insert(k);
    }
  }
  std::vector<std::string> heads;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto it = rows[i].find(id_key);
    heads.push_back("c" + (it != rows[i].end() ? cell(*it) : std::to_string(i)));
  }
  for (const std::string& k : keys) {
    Json line = {{"name", k}};
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto it = rows[i].find(k);
      line[heads[i]] = it != rows[i].end() ? *it : Json();
    }
    side.push_back(std::move(line));
  }
  Keys order = {"name"};
  for (const std::string& h : heads) order.push_back(h);
  return table(side, order);
}

std::vector<std::pair<std::string, std::string>> flatten(const Json& obj, const Keys& preferred) {
  std::vector<std::pair<std::string, std::string>> out;
  for (Entry& e : flatten_entries(obj, preferred))
    out.emplace_back(std::move(e.name), std::move(e.value));
  return out;
}

std::string name_values(const Json& obj, const Keys& preferred, std::string_view indent) {
  const std::vector<Entry> entries = flatten_entries(obj, preferred);
  if (entries.empty()) return fmt::format("{}(none)\n", indent);
  size_t name_w = 0;
  size_t num_w = 0;
  for (const Entry& e : entries) {
    name_w = std::max(name_w, e.name.size());
    if (e.numeric) num_w = std::max(num_w, e.value.size());
  }
  std::string out;
  for (const Entry& e : entries) {
    // Numbers line up on their last digit; strings start where the numbers' column starts.
    out += fmt::format("{}{:<{}}  {}\n", indent, e.name, name_w,
                       e.numeric ? fmt::format("{:>{}}", e.value, num_w) : e.value);
  }
  return out;
}

std::string inline_pairs(const Json& obj, const Keys& preferred) {
  std::string out;
  for (const auto& [n, v] : flatten(obj, preferred)) {
    if (!out.empty()) out += ' ';
    out += fmt::format("{}={}", n, v);
  }
  return out;
}

std::string generic(const Json& v) {
  if (v.is_null()) return "ok\n";
  if (is_scalar(v)) return cell(v) + "\n";
  if (is_table(v)) return table(v);
  if (v.is_array()) return cell(v) + "\n";
  Json plain = Json::object();
  std::string tables;
  for (const auto& [k, x] : v.items()) {
    if (is_table(x)) {
      tables += fmt::format("\n{}:\n{}", k, table(x));
    } else {
      plain[k] = x;
    }
  }
  std::string out = plain.empty() ? "" : name_values(plain);
  if (out.empty() && !tables.empty()) tables.erase(0, 1);  // no blank line before the first
  return out + tables;
}

}  // namespace fm::dpctl
