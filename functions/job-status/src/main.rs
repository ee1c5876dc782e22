//! The `job-status` Lambda function: GET /api/v1/jobs and GET /api/v1/jobs/{id} behind a function
//! URL.

#[tokio::main]
async fn main() -> Result<(), ff_lambda::Error> {
    ff_lambda::run_function(ff_lambda::Function::JobStatus).await
}
