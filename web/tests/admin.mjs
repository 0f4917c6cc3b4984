// The admin suite (issue 13). Run by browser.mjs; see harness.mjs.
export default async function admin(h) {
  const { test } = await h.suite("admin");
  void test;
}
