from huirongke.kit.sms.base import SmsMessage, SmsProvider, SmsSendError

__all__ = ["SmsMessage", "SmsProvider", "SmsSendError"]
