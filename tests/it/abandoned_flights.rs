//! Abandoned verifications (issue 10 §3): a timeout middleware wrapped
//! outside the auth middleware drops the requests waiting for slow
//! verifications; the flights must still complete and give their
//! `max_in_flight` slots back, so that the next users are served.

use std::time::Duration;

use crate::support::*;
use actix_accountkit::cache::CacheConfig;
use actix_accountkit::AccountKit;
use actix_web::dev::Service as _;
use actix_web::{web, App};
use serde_json::json;

#[actix_web::test]
async fn requests_dropped_by_a_timeout_do_not_wedge_the_cache() {
    let emu = emulator();
    let kit = AccountKit::builder(config(&emu).build().unwrap())
        .cache(CacheConfig::builder().max_in_flight(4).build().unwrap())
        .build()
        .unwrap();
    let k = kit.clone();
    let app = serve!(move || {
        App::new()
            .wrap(k.auth().clone())
            // Outermost: gives up after 300 ms, dropping the request (and its
            // wait for the verification) with a 504.
            .wrap_fn(|req, srv| {
                let call = srv.call(req);
                async move {
                    match tokio::time::timeout(Duration::from_millis(300), call).await {
                        Ok(answer) => answer,
                        Err(_) => Err(actix_web::error::ErrorGatewayTimeout("too slow")),
                    }
                }
            })
            .route("/me", web::get().to(me))
    });

    let phones: Vec<String> = (0..5).map(|i| format!("+1555444000{i}")).collect();
    let users = futures::future::join_all(phones.iter().map(|p| login(&emu, p))).await;
    fault(&emu, json!({"latency_ms": 600, "times": 4})).await;
    let url = app.url("/me");
    let slow =
        futures::future::join_all(users[..4].iter().map(|u| get_with(&url, Some(&u.token)))).await;
    for res in &slow {
        assert_eq!(res.status(), 504);
    }
    // The four verifications go on without their requests and finish.
    for _ in 0..500 {
        if kit.cache().stats().in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = kit.cache().stats();
    assert_eq!(stats.in_flight, 0, "{stats:?}");
    // A user who logged in meanwhile is served, and the four abandoned
    // verifications were kept: their users are served from the cache.
    let res = get_with(&app.url("/me"), Some(&users[4].token)).await;
    assert_eq!(res.status(), 200);
    let before = calls(&emu, "me").await;
    for user in &users[..4] {
        assert_eq!(
            get_with(&app.url("/me"), Some(&user.token)).await.status(),
            200
        );
    }
    assert_eq!(calls(&emu, "me").await, before, "served from the cache");
    assert_eq!(kit.cache().stats().overloaded, 0);
}
