from conftest import auth, sign_up, latest_code
from datetime import timedelta
from fastapi.testclient import TestClient
from huirongke.kit.clock import clock

def test_probe(client):
    token, user = sign_up(client)
    h = auth(token)
    c = TestClient(client.app, raise_server_exceptions=False)
    out = {}
    out["users"] = c.get("/api/v1/users/a%00b", headers=h).status_code
    out["sessions"] = c.delete("/api/v1/me/sessions/a%00b", headers=h).status_code
    out["avatar"] = c.patch("/api/v1/me", json={"avatar_media_id": "a\x00b"}, headers=h).status_code
    out["nickname"] = c.patch("/api/v1/me", json={"nickname": "a\x00b"}, headers=h).status_code
    out["region"] = c.patch("/api/v1/me", json={"region": "a\x00b"}, headers=h).status_code
    out["media"] = c.get("/media/a%00b").status_code
    clock.advance(timedelta(seconds=61))
    c.post("/api/v1/auth/sms-codes", json={"phone": "13800138000"})
    code = latest_code(c, "13800138000")
    out["device"] = c.post("/api/v1/auth/sessions", json={"phone": "13800138000", "code": code, "device": {"model": "a\x00b", "device_id": "d1"}}).status_code
    clock.advance(timedelta(seconds=61))
    c.post("/api/v1/auth/sms-codes", json={"phone": "13800138000"})
    code = latest_code(c, "13800138000")
    out["device_os"] = c.post("/api/v1/auth/sessions", json={"phone": "13800138000", "code": code, "device": {"os_version": "a\x00b", "network_type": "x\x00", "device_id": "d1"}}).status_code
    out["code_nul"] = c.post("/api/v1/auth/sessions", json={"phone": "13800138000", "code": "12\x003456"}).status_code
    out["pw_nul"] = c.post("/api/v1/auth/sessions", json={"phone": "13800138000", "password": "ab\x00cdefg1"}).status_code
    out["pwset"] = c.put("/api/v1/me/password", json={"password": "ab\x00cdefg1"}, headers=h).status_code
    out["outbox"] = c.get("/api/v1/dev/sms-outbox", params={"phone": "138\x0000138000"}).status_code
    out["rn"] = c.put("/api/v1/privacy/consents/real_name", json={"granted": True}, headers=h).status_code
    out["realname"] = c.post("/api/v1/me/real-name", json={"name": "王\x00明", "id_number": "11010519491231002X"}, headers=h).status_code
    out["consent"] = c.put("/api/v1/privacy/consents/a%00b", json={"granted": True}, headers=h).status_code
    print("PROBE", out)
