//! The `job-delete` Lambda function: DELETE /api/v1/jobs/{id} (cancels the job and removes its
//! files) behind a function URL.

#[tokio::main]
async fn main() -> Result<(), ff_lambda::Error> {
    ff_lambda::run_function(ff_lambda::Function::JobDelete).await
}
