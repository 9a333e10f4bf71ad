#pragma once
/// @file net.hpp
/// fedpp's network runtime (target fedpp::net): the wire protocol, the server-side TcpTransport
/// (a Transport for fedpp::Server) and the NetworkClient that runs a fedpp::Client remotely.

#include "fedpp/net/client.hpp"
#include "fedpp/net/connection.hpp"
#include "fedpp/net/frame.hpp"
#include "fedpp/net/protocol.hpp"
#include "fedpp/net/server.hpp"
