"""Arguments of ACME's tools that the approval and executor tests send again and again."""

TICKET = {"customer_email": "john.smith@email.com", "subject": "Broken strap",
          "description": "The strap broke after a week.", "priority": "high"}
ORDER = {"order_id": "ORD-78432"}
