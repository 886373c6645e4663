//! The thread pool: results, panics contained and the pool still working, a bounded queue, and a
//! drain that waits for running jobs. (The process pool runs the example binary: see the root
//! tests.)

use std::time::{Duration, Instant};

use axum::{routing::get, Router};
use genro_server::{
    executor::{ExecutorError, ThreadPool},
    AsgiServer, Config, ServerContext,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_jobs_return_panics_are_errors_and_the_pool_recovers() {
    let pool = ThreadPool::new(2, 2);
    assert_eq!(pool.run_in_executor(|| 6 * 7).await, Ok(42));
    let err = pool
        .run_in_executor(|| -> u32 { panic!("a blocking job failed") })
        .await
        .unwrap_err();
    assert_eq!(err, ExecutorError::Panicked("a blocking job failed".into()));
    assert_eq!(pool.run_in_executor(|| "again").await, Ok("again"));
    assert_eq!(pool.busy(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_refuses_at_once_instead_of_queueing_without_bound() {
    let pool = ThreadPool::new(1, 1);
    let sleeper = || std::thread::sleep(Duration::from_millis(400));
    let running = tokio::spawn({
        let pool = pool.clone();
        async move { pool.run_in_executor(sleeper).await }
    });
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move { pool.run_in_executor(sleeper).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(pool.run_in_executor(|| ()).await, Err(ExecutorError::Full));
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "refused at once"
    );
    assert!(running.await.unwrap().is_ok());
    assert!(waiting.await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_waits_for_a_running_executor_job() {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let config = Config::from_ini_str(
        "[server]\nport = 0\n[shutdown]\ndrain_timeout = 5s\n",
        "t.ini",
        Vec::new(),
    )
    .unwrap();
    let server = AsgiServer::from_config(config).without_logging();
    let handle = server.handle();
    let executors = server.executors().clone();
    let task = tokio::spawn(server.serve(Router::new().route(
        "/",
        get(|ctx: ServerContext| async move { ctx.executors().threads().busy().to_string() }),
    )));
    handle.local_addr().await.unwrap();
    let job = tokio::spawn({
        let done = done.clone();
        async move {
            executors
                .run_in_executor(move || {
                    std::thread::sleep(Duration::from_millis(800));
                    done.store(true, std::sync::atomic::Ordering::SeqCst);
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let began = Instant::now();
    handle.shutdown();
    task.await.unwrap().unwrap();
    assert!(
        done.load(std::sync::atomic::Ordering::SeqCst),
        "the server stopped before the job ended"
    );
    assert!(began.elapsed() >= Duration::from_millis(500));
    assert!(job.await.unwrap().is_ok());
}
