"""The demo catalogue's texts in Simplified Chinese, by slug (``portal.demo.catalogue`` holds the English)."""

# Chinese text uses full-width punctuation on purpose.
# ruff: noqa: RUF001

LANGUAGE = "zh-hans"

# slug → (name, description)
CATEGORIES = {
    "contact-details": ("联系方式", "您的姓名、电子邮件地址、电话号码和邮寄地址。"),
    "transaction-history": ("交易记录", "银行卡和账户付款：日期、金额、商户以及商户类型。"),
    "account-balances": ("账户余额", "您各个账户和储蓄的当前余额及历史余额。"),
    "credit-score": ("信用评分", "征信机构出具的您的信用评分和信用报告。"),
    "device-browsing": ("设备与浏览行为", "您的设备类型和应用版本，以及您使用的页面和界面及其先后顺序。"),
    "location": ("位置", "根据您的网络地址推断的大致位置；如您允许，还包括您付款时手机所在的位置。"),
    "income-employment": ("收入与就业", "转入您账户的工资以及发放工资的雇主。"),
    "health-purchases": (
        "与健康相关的消费",
        "在药店、诊所、眼镜店和其他医疗服务机构的付款，这些付款可能透露您的健康状况。",
    ),
    "identity-documents": ("身份证件", "护照或身份证信息，以及您开户时拍摄的照片。"),
}

# purpose slug → (name, description, retention)
NOTICES = {
    "fraud-prevention": (
        "防范欺诈与安全",
        "我们会检查每一笔付款和每一次登录，看是否有欺诈或他人冒用您账户的迹象——例如同一张卡在一小时内"
        "于两个国家使用，或在新手机上登录后紧接着大额转账。可疑活动会被暂停以待审核，我们可能会致电您确认"
        "是否为您本人操作。这是法律要求我们做的，因此无法关闭。",
        "按照反洗钱法的要求，每笔交易完成后保存六年。",
    ),
    "service-emails": (
        "服务消息",
        "我们会向您发送使用账户所必需的消息：对账单、安全提醒、条款变更，以及对您所办理事项的确认。"
        "这些消息绝不是广告；没有它们，我们就无法为您管理账户。",
        "在您持有账户期间保存，销户后再保存 12 个月。",
    ),
    "personalised-offers": (
        "个性化优惠",
        "我们会根据您的消费和储蓄情况，向您推荐可能适合您的产品——例如当您的活期账户中有闲置资金时推荐"
        "储蓄账户，或当您经常在境外付款时推荐旅行卡。优惠会显示在应用中，也会通过电子邮件发送。我们绝不"
        "出售这些分析结果。如果您不同意，您仍会看到我们的一般优惠。",
        "在您撤回同意或销户 12 个月后，您的消费画像将被删除。",
    ),
    "product-analytics": (
        "产品分析",
        "我们会统计您如何使用我们的应用和网站——您打开了哪些界面、在哪里遇到困难、哪里出现崩溃——以便"
        "修复问题、改进设计。这些数据关联的是一个随机标识符，而不是您的姓名；我们的分析服务提供商只按照"
        "我们的指示处理这些数据。",
        "原始事件数据在 14 个月后删除；只保留无法识别您身份的统计数据。",
    ),
    "credit-risk-assessment": (
        "信用风险评估",
        "当您申请透支额度或贷款时，我们会查看您的收入、余额和定期付款，以决定能否向您放贷以及放贷多少。"
        "如您对任何决定有异议，将由专人复核。",
        "按照贷款相关规定，在您提出申请后保存五年。",
    ),
    "advertising-partners": (
        "与广告合作伙伴共享",
        "我们会与选定的广告合作伙伴共享您的联系方式和兴趣摘要，以便他们在自己的网站和社交媒体上向您展示"
        "其产品的广告。根据加利福尼亚州法律，这属于“出售”或“共享”个人信息；您浏览器发出的全球隐私控制"
        "（GPC）信号会将其关闭。",
        "合作伙伴必须在收到数据 90 天后或在您撤回同意时（以较早者为准）删除这些数据。",
    ),
    "research-with-affiliates": (
        "与关联公司开展研究",
        "我们集团旗下的 Meridian Research Labs 研究消费模式，以设计更好的金融产品——例如为每月收入不固定"
        "的人设计预算工具。在您同意的期限内，它会收到不含您姓名和账号的交易记录，且不得尝试识别您的身份。"
        "其中包括与健康相关的消费，属于敏感信息：如果您对此感到不安，请选择不同意。",
        "在您的同意结束时删除，最迟在 180 天后删除。公布的研究结果绝不会识别任何人。",
    ),
}

CREDIT_NOTICE_V2 = (
    "信用风险评估",
    "当您申请透支额度或贷款时，我们会查看您的收入、余额和定期付款，以决定能否向您放贷以及放贷多少。"
    "我们现在还会向 Clearview Credit Bureau（征信机构）查询您的信用评分和信用报告，并用其记录核对您的"
    "身份证件。Clearview 会记录我们的查询，其他贷款机构在 12 个月内都能看到这次查询。如您对任何决定有"
    "异议，将由专人复核。",
    "按照贷款相关规定，在您提出申请后保存五年。",
)
CREDIT_CHANGE_SUMMARY = (
    "我们现在还会从 Clearview Credit Bureau 获取您的信用评分，并通过它核对您的身份证件。"
    "其他贷款机构在 12 个月内都能看到这次查询。"
)
FIRST_VERSION_SUMMARY = "第一版。"

# partner slug → what it does with data it already received once a consumer withdraws
PARTNER_RETENTION = {
    "northwind-fraud-ops": "按照反洗钱法的要求，欺诈案件记录在交易完成后保存六年；其他数据在 30 天内删除。",
    "mailloop": "在 30 天内从其邮件系统中删除您的联系方式；投递日志在 90 天后删除。",
    "atlas-product-insights": "在 30 天内删除与您相关的事件记录；只保留不指向任何个人的汇总数字。",
    "brightside-ads": "立即停止向您定向投放广告，并在 90 天内删除您的广告画像。",
    "crestline-data-exchange": "依据其自身政策，将已购买的数据最多保存三年，除非您要求其删除。",
    "meridian-research-labs": "立即将您排除在新的研究之外；已发表的研究结果会保留，但不含您的姓名。",
    "harbor-payments": "按照银行卡组织的规则和法律要求，银行卡付款记录保存五年。",
    "clearview-credit-bureau": "按照征信规定，我们的信用查询记录会在您的信用档案中保留 12 个月。",
}


def notice_translations(slug: str, change_summary: str = FIRST_VERSION_SUMMARY) -> dict[str, dict[str, str]]:
    """The Chinese texts of a demo purpose's first notice, as ``purpose_version_publish`` takes them."""
    name, description, retention = NOTICES[slug]
    return {
        LANGUAGE: {"name": name, "description": description, "retention": retention, "change_summary": change_summary}
    }


def category_translations(slug: str, name: str, description: str) -> dict[str, dict[str, str]]:
    """A demo data category's name and description in English and Chinese."""
    zh_name, zh_description = CATEGORIES[slug]
    return {
        "en": {"name": name, "description": description},
        LANGUAGE: {"name": zh_name, "description": zh_description},
    }


def partner_translations(slug: str, retention: str) -> dict[str, dict[str, str]]:
    """A demo partner's retention rule in English and Chinese."""
    return {"en": {"retention": retention}, LANGUAGE: {"retention": PARTNER_RETENTION[slug]}}
