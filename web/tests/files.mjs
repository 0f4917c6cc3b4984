// The files suite (issue 13). Run by browser.mjs; see harness.mjs.
export default async function files(h) {
  const { test } = await h.suite("files");
  void test;
}
