"""Development aids that only exist with HRK_ENV=dev: the SMS outbox the console provider fills."""
