// The account suite (issue 13). Run by browser.mjs; see harness.mjs.
export default async function account(h) {
  const { test } = await h.suite("account");
  void test;
}
