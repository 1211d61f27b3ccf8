// Differential-test oracle: ECPay's official Node SDK (ecpay_aio_nodejs) computes CheckMacValues.
//
// stdin:  {"hash_key": "...", "hash_iv": "...", "cases": [{"params": {...}, "mode": 1}, ...]}
// stdout: one line, {"results": ["<CheckMacValue>", ...]} (same order as the cases)
//
// The SDK's gen_chk_mac_value console.log()s the wrapped string, HashKey and HashIV included, so
// console.log is silenced before it runs: nothing but the results ever reaches stdout.
"use strict";

const path = require("path");

console.log = () => {};
console.info = () => {};
console.debug = () => {};

const APIHelper = require(path.join(__dirname, "node_modules", "ecpay_aio_nodejs", "lib", "ecpay_payment", "helper.js"));

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  input += chunk;
});
process.stdin.on("end", () => {
  const request = JSON.parse(input);
  const helper = new APIHelper({
    OperationMode: "Test",
    MercProfile: { MerchantID: "0", HashKey: request.hash_key, HashIV: request.hash_iv },
    IgnorePayment: [],
    IsProjectContractor: false,
  });
  // The SDK mutates its input, so each case gets its own copy.
  const results = request.cases.map((c) => helper.gen_chk_mac_value(Object.assign({}, c.params), c.mode));
  process.stdout.write(JSON.stringify({ results: results }) + "\n");
});
