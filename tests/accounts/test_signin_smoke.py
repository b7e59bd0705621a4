from conftest import auth, sign_up


def test_sign_up_and_read_me(client):
    token, user = sign_up(client)
    assert user["phone"] == "+8613800138000"
    r = client.get("/api/v1/me", headers=auth(token))
    assert r.status_code == 200
    assert r.json()["id"] == user["id"]
