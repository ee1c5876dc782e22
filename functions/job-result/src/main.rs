//! The `job-result` Lambda function: GET /api/v1/jobs/{id}/result (a redirect to a presigned S3
//! URL) behind a function URL.

#[tokio::main]
async fn main() -> Result<(), ff_lambda::Error> {
    ff_lambda::run_function(ff_lambda::Function::JobResult).await
}
