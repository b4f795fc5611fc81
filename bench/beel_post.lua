-- wrk script: create BeeL customers, keeping the -H headers.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"legal_name": "Bench Cliente SL", "nif": "B12345674", "email": "bench@example.com", "phone": "+34 600 000 000"}'
