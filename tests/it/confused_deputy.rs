//! Two apps' middlewares in one process: a token valid for one app is
//! refused by the other, also once the other has it cached.

use crate::support::*;
use actix_accountkit::config::Config;
use actix_accountkit::AccountKit;
use actix_accountkit::VerifiedAccount;
use actix_web::{web, App, HttpResponse};

async fn me(account: VerifiedAccount) -> HttpResponse {
    HttpResponse::Ok().body(account.application_id().unwrap_or_default().to_owned())
}

#[actix_web::test]
async fn a_token_cached_for_one_app_is_refused_by_the_other() {
    for require_proof in [true, false] {
        let emu = emulator_with(require_proof);
        let a = kit(&emu);
        let b = AccountKit::new(
            Config::builder(OTHER_APP_ID, OTHER_APP_SECRET)
                .base_url(emu.base_url())
                .build()
                .unwrap(),
        )
        .unwrap();
        let (ka, kb) = (a.clone(), b.clone());
        let app = serve!(move || {
            App::new()
                .service(
                    web::scope("/a")
                        .wrap(ka.auth().clone())
                        .route("/me", web::get().to(me)),
                )
                .service(
                    web::scope("/b")
                        .wrap(kb.auth().clone())
                        .route("/me", web::get().to(me)),
                )
        });
        let user_a = login(&emu, "+15552220001").await;
        let user_b = login_other_app(&emu, "+15552220001").await;
        assert_ne!(
            user_a.account_id, user_b.account_id,
            "accounts are app-scoped"
        );

        // Each token is verified and cached where it belongs...
        let res = get_with(&app.url("/a/me"), Some(&user_a.token)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), APP_ID);
        let res = get_with(&app.url("/b/me"), Some(&user_b.token)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), OTHER_APP_ID);
        assert_eq!(b.cache().stats().entries, 1);

        // ...and refused by the other app, before and after being cached.
        for _ in 0..2 {
            assert_eq!(
                get_with(&app.url("/a/me"), Some(&user_b.token))
                    .await
                    .status(),
                401
            );
            assert_eq!(
                get_with(&app.url("/b/me"), Some(&user_a.token))
                    .await
                    .status(),
                401
            );
        }
        // The refusals were definite (cached), and the owners still pass.
        assert!(
            a.cache().stats().negative_hits >= 1,
            "require_proof={require_proof}"
        );
        assert_eq!(
            get_with(&app.url("/a/me"), Some(&user_a.token))
                .await
                .status(),
            200
        );
        assert_eq!(
            get_with(&app.url("/b/me"), Some(&user_b.token))
                .await
                .status(),
            200
        );
    }
}
