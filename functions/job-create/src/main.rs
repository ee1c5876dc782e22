//! The `job-create` Lambda function: POST /api/v1/jobs (stores the inputs and the job; the worker
//! function runs it) behind a function URL.

#[tokio::main]
async fn main() -> Result<(), ff_lambda::Error> {
    ff_lambda::run_function(ff_lambda::Function::JobCreate).await
}
