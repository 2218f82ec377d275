//! Nested protection (issue 10 §1): a verification counts only for the
//! verifier that made it. An inner scope, or a route's registered
//! `AccountKitAuth`, of another app or with a stricter verifier verifies the
//! request again instead of trusting what an outer middleware verified.

use std::sync::Arc;

use crate::support::*;
use actix_accountkit::config::Config;
use actix_accountkit::types::Account;
use actix_accountkit::verify::{Refusal, Verifier};
use actix_accountkit::AccountKit;
use actix_accountkit::AccountKitAuth;
use actix_accountkit::MaybeAccount;
use actix_web::{web, App, HttpResponse};
use futures::future::{BoxFuture, FutureExt};

/// "Staff only", standing for any stricter policy: refuses everyone.
struct DenyAll;

impl Verifier for DenyAll {
    fn verify<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Arc<Account>, Refusal>> {
        async { Err(Refusal::InvalidToken { subcode: None }) }.boxed()
    }
}

async fn maybe(MaybeAccount(account): MaybeAccount) -> HttpResponse {
    HttpResponse::Ok().body(account.map(|a| a.id().to_owned()).unwrap_or_default())
}

fn other_app(emu: &actix_accountkit::emulator::Emulator) -> AccountKit {
    AccountKit::new(
        Config::builder(OTHER_APP_ID, OTHER_APP_SECRET)
            .base_url(emu.base_url())
            .build()
            .expect("config"),
    )
    .expect("kit")
}

#[actix_web::test]
async fn an_outer_verification_does_not_open_inner_scopes_of_another_verifier() {
    let emu = emulator();
    let (a, b) = (kit(&emu), other_app(&emu));
    let deny = AccountKitAuth::new(DenyAll);
    let (ka, kb, d) = (a.clone(), b.clone(), deny.clone());
    let app = serve!(move || {
        App::new()
            .wrap(ka.auth().clone())
            .route("/me", web::get().to(me))
            // Middleware path: inner scopes wrapped in another verifier.
            .service(
                web::scope("/staff")
                    .wrap(d.clone())
                    .route("/me", web::get().to(me)),
            )
            .service(
                web::scope("/b")
                    .wrap(kb.auth().clone())
                    .route("/me", web::get().to(me)),
            )
            // The same verifier under other settings: trusted, not re-verified.
            .service(
                web::scope("/same")
                    .wrap(ka.auth().to_builder().realm("same").build().unwrap())
                    .route("/me", web::get().to(me)),
            )
            // Extractor path: routes that register another verifier.
            .service(web::resource("/staff-extract").app_data(d.clone()).to(me))
            .service(web::resource("/staff-maybe").app_data(d.clone()).to(maybe))
            .service(
                web::resource("/b-extract")
                    .app_data(kb.auth().clone())
                    .to(me),
            )
            .service(
                web::resource("/b-data")
                    .app_data(web::Data::new(kb.auth().clone()))
                    .to(me),
            )
            .service(
                web::resource("/a-extract")
                    .app_data(ka.auth().clone())
                    .to(me),
            )
    });
    let user = login(&emu, "+15553330001").await;
    let token = Some(user.token.as_str());

    let res = get_with(&app.url("/me"), token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), user.account_id);
    for path in [
        "/staff/me",
        "/b/me",
        "/staff-extract",
        "/staff-maybe",
        "/b-extract",
        "/b-data",
    ] {
        let res = get_with(&app.url(path), token).await;
        assert_eq!(
            res.status(),
            401,
            "{path}: an app-A token passed another verifier"
        );
        let challenge = res.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{path}: {challenge}");
    }
    // App B asked Account Kit itself and refused the token as another app's.
    assert!(b.cache().stats().misses >= 1);

    // The same verifier (middleware or registered) trusts the outer verdict:
    // one cache lookup per request, the outer one.
    let before = a.cache().stats().lookups();
    for path in ["/same/me", "/a-extract"] {
        let res = get_with(&app.url(path), token).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.text().await.unwrap(), user.account_id);
    }
    assert_eq!(a.cache().stats().lookups() - before, 2);
}

#[actix_web::test]
async fn the_inner_verifier_decides_for_its_own_tokens() {
    // An outer scope of app B around an inner scope of app A: an app-A token
    // is refused outside, so it never reaches the inner scope; an app-B
    // token passes the outer and is refused by the inner.
    let emu = emulator();
    let (a, b) = (kit(&emu), other_app(&emu));
    let (ka, kb) = (a.clone(), b.clone());
    let app = serve!(move || {
        App::new().service(
            web::scope("/b")
                .wrap(kb.auth().clone())
                .route("/me", web::get().to(me))
                .service(
                    web::scope("/a")
                        .wrap(ka.auth().clone())
                        .route("/me", web::get().to(me)),
                )
                .service(
                    web::resource("/a-extract")
                        .app_data(ka.auth().clone())
                        .to(me),
                ),
        )
    });
    let user_b = login_other_app(&emu, "+15553330002").await;
    let token = Some(user_b.token.as_str());
    assert_eq!(get_with(&app.url("/b/me"), token).await.status(), 200);
    assert_eq!(get_with(&app.url("/b/a/me"), token).await.status(), 401);
    assert_eq!(
        get_with(&app.url("/b/a-extract"), token).await.status(),
        401
    );
    let user_a = login(&emu, "+15553330003").await;
    assert_eq!(
        get_with(&app.url("/b/a/me"), Some(&user_a.token))
            .await
            .status(),
        401,
        "refused by the outer scope of app B"
    );
}

#[actix_web::test]
async fn an_outer_plain_registration_does_not_stand_in_for_an_inner_data_one() {
    // actix-web finds a plain `AccountKitAuth` on the App before a
    // `web::Data<AccountKitAuth>` on the route: two types, each looked up
    // innermost first. Which is the route's own cannot be told, so two
    // that are not one value are refused, never guessed between.
    let emu = emulator();
    let (a, b) = (kit(&emu), other_app(&emu));
    let (ka, kb) = (a.clone(), b.clone());
    let app = serve!(move || {
        App::new()
            .app_data(ka.auth().clone())
            .wrap(ka.auth().clone())
            .service(
                web::resource("/b-data")
                    .app_data(web::Data::new(kb.auth().clone()))
                    .to(me),
            )
            .service(
                web::resource("/b-data-maybe")
                    .app_data(web::Data::new(kb.auth().clone()))
                    .to(maybe),
            )
            // The same verifier, rebuilt: it may read the token elsewhere,
            // answer under another realm; not one value, so refused too.
            .service(
                web::resource("/a-rebuilt")
                    .app_data(web::Data::new(
                        ka.auth().to_builder().realm("rebuilt").build().unwrap(),
                    ))
                    .to(me),
            )
            // A clone in the other form is one value: it serves.
            .service(
                web::resource("/a-data")
                    .app_data(web::Data::new(ka.auth().clone()))
                    .to(me),
            )
    });
    let user = login(&emu, "+15553330004").await;
    let token = Some(user.token.as_str());
    for path in ["/b-data", "/b-data-maybe", "/a-rebuilt"] {
        let res = get_with(&app.url(path), token).await;
        assert_eq!(
            res.status(),
            500,
            "{path}: served by the App's registration"
        );
        let body = res.text().await.unwrap();
        assert!(body.contains("one form"), "{path}: {body}");
    }
    let res = get_with(&app.url("/a-data"), token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), user.account_id);
}
