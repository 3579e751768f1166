// CloudFront viewer-request function (cloudfront-js-2.0) in front of the candlelake API and dashboard:
// only viewers from the networks the deployment lists (-c dashboard_cidrs=...) get through; everyone
// else is answered 403 at the edge. The distribution serves IPv4 only, so every viewer is checked.
// infra/stacks/api.py replaces the placeholder below with [[network, prefix length], ...].
var ALLOWED = __ALLOWED_NETWORKS__;

function ipv4(text) {
  var parts = String(text).split(".");
  if (parts.length !== 4) return null;
  var value = 0;
  for (var i = 0; i < 4; i++) {
    if (!/^[0-9]{1,3}$/.test(parts[i])) return null;
    var octet = Number(parts[i]);
    if (octet > 255) return null;
    value = value * 256 + octet;
  }
  return value;
}

function allowed(ip) {
  var value = ipv4(ip);
  if (value === null) return false;
  for (var i = 0; i < ALLOWED.length; i++) {
    var block = Math.pow(2, 32 - ALLOWED[i][1]);
    if (Math.floor(value / block) === Math.floor(ALLOWED[i][0] / block)) return true;
  }
  return false;
}

function handler(event) {
  if (allowed(event.viewer.ip)) return event.request;
  return {
    statusCode: 403,
    statusDescription: "Forbidden",
    headers: { "content-type": { value: "application/json" }, "cache-control": { value: "no-store" } },
    body: {
      encoding: "text",
      data: '{"error": {"code": "network_not_allowed", "message": "this dashboard is open to the networks its deployment lists only", "request_id": ""}}',
    },
  };
}
