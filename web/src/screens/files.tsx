// The files of a resource: upload straight to S3, list, thumbnails, downloads.
// (issue 13: to be written)
export function ResourceFiles({ resourceId }: { resourceId: string }) {
  void resourceId;
  return null;
}
