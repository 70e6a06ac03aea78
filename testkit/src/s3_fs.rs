//! [`Folder`]: s3s-fs's S3 over a folder, with one fix of protocol: an empty `delimiter`
//! means no delimiter (S3's meaning, which minio-go clients such as restic rely on when they
//! list recursively), where s3s-fs would group every key by its first character.

use s3s::{S3, S3Request, S3Response, S3Result, dto::*};

/// s3s-fs, listing as S3 does.
pub(crate) struct Folder(pub s3s_fs::FileSystem);

/// The impl: listings as S3 lists, every other method passed through unchanged.
macro_rules! through {
    ($($name:ident: $input:ty => $output:ty;)*) => {
        #[async_trait::async_trait]
        impl S3 for Folder {
            $(async fn $name(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                self.0.$name(req).await
            })*

            async fn list_objects(&self, mut req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
                req.input.delimiter = req.input.delimiter.take().filter(|d| !d.is_empty());
                self.0.list_objects(req).await
            }

            async fn list_objects_v2(
                &self,
                mut req: S3Request<ListObjectsV2Input>,
            ) -> S3Result<S3Response<ListObjectsV2Output>> {
                req.input.delimiter = req.input.delimiter.take().filter(|d| !d.is_empty());
                self.0.list_objects_v2(req).await
            }
        }
    };
}

through! {
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput;
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput;
    copy_object: CopyObjectInput => CopyObjectOutput;
    create_bucket: CreateBucketInput => CreateBucketOutput;
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput;
    delete_bucket: DeleteBucketInput => DeleteBucketOutput;
    delete_object: DeleteObjectInput => DeleteObjectOutput;
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput;
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput;
    get_object: GetObjectInput => GetObjectOutput;
    head_bucket: HeadBucketInput => HeadBucketOutput;
    head_object: HeadObjectInput => HeadObjectOutput;
    list_buckets: ListBucketsInput => ListBucketsOutput;
    list_parts: ListPartsInput => ListPartsOutput;
    put_object: PutObjectInput => PutObjectOutput;
    upload_part: UploadPartInput => UploadPartOutput;
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput;
}
