// The OpenAPI 3.1 document of a route table: every route with its method, path and query
// parameters (query names are read from the summary's `?name=` / `&name=`), its scope
// (bearer token, `x-portrait-scope`), its request body and answer, and the error answers
// every route shares ({"error": {"code", "message"}}). Served at GET /openapi.json and
// printed by `portrait openapi`.
#pragma once

#include <string>
#include <string_view>

#include "core/http.h"

namespace portrait {

std::string OpenApiDocument(const RouteTable& routes, std::string_view version);

}  // namespace portrait
