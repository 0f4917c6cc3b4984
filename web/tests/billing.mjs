// The billing suite (issue 13). Run by browser.mjs; see harness.mjs.
export default async function billing(h) {
  const { test } = await h.suite("billing");
  void test;
}
