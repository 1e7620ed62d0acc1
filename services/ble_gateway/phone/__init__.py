"""``--source phone``: phones as wearables, through the Sensor Logger app or the gateway's own page.

``schema`` parses the app's JSON (the page speaks the same schema), ``align``
turns a phone's separate sensor streams into frames on one sample timeline,
``order`` puts batches back in ``messageId`` order, ``hub`` keeps the phones
(bounded) and publishes through the core, ``server`` serves the HTTP push
endpoint, the page and its WebSocket, ``secrets`` the token and certificate.
"""
