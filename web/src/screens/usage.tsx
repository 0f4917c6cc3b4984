// Usage of the organization against its plan's limits. (issue 13: to be written)
export function Usage() {
  return <main><h1>Usage</h1></main>;
}
