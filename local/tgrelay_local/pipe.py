"""An EventBridge Pipe from an SQS queue to a Standard state machine, FIRE_AND_FORGET.

What it keeps of the real pipe: batch size from the template; the target input is a
JSON array of SQS records in the pipe's shape; a message is deleted only after
StartExecution succeeded; a failed start leaves it on the queue, whose redrive policy
parks it in the dead-letter queue after maxReceiveCount receives (moto's SQS does that).
Where it differs: the real pipe waits out the visibility timeout before a failed message
is received again; this one makes it visible again at once.
"""

import json
import logging
import re
import threading
import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)


class PipePoller:
    def __init__(
        self,
        sqs,
        sfn,
        queue_url: str,
        queue_arn: str,
        state_machine_arn: str,
        batch_size: int,
        region: str,
        input_template: str | None = None,
    ):
        self.sqs, self.sfn = sqs, sfn
        self.input_template = input_template
        self.queue_url, self.queue_arn = queue_url, queue_arn
        self.state_machine_arn = state_machine_arn
        self.batch_size = batch_size
        self.region = region
        self.started: list[str] = []  # execution ARNs, in start order
        self.failed_starts = 0
        self._stop = threading.Event()
        self._busy = threading.Event()  # set while a batch is between receive and delete
        self._thread = threading.Thread(target=self._run, name="pipe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.poll_once():
                self._stop.wait(0.02)

    def poll_once(self) -> bool:
        """Receive one batch and start one execution for it; False when the queue was empty."""
        self._busy.set()
        try:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.batch_size,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return False
            records = [self._record(message) for message in messages]
            if self.input_template is not None:
                records = [apply_input_template(self.input_template, record) for record in records]
            try:
                # A pipe cannot name executions; Step Functions gives them a UUID.
                execution = self.sfn.start_execution(
                    stateMachineArn=self.state_machine_arn, name=str(uuid.uuid4()), input=json.dumps(records)
                )
            except (BotoCoreError, ClientError) as error:
                self.failed_starts += 1
                log.warning("StartExecution failed, message stays on the queue: %s", type(error).__name__)
                for message in messages:
                    self.sqs.change_message_visibility(
                        QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                return True
            self.started.append(execution["executionArn"])
            for message in messages:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            return True
        finally:
            self._busy.clear()

    def _record(self, message: dict) -> dict:
        """One SQS message as a pipe hands it to its target."""
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                name: {
                    "stringValue": value.get("StringValue"),
                    "binaryValue": value.get("BinaryValue"),
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value["DataType"],
                }
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        }


# <$.path> in an InputTemplate; quoted ("<$.path>") it stands for a string.
_PLACEHOLDER = re.compile(r'"<(\$[^>]*)>"|<(\$[^>]*)>')


def apply_input_template(template: str, record: dict) -> Any:
    """What the pipe sends for `record` under the target's InputTemplate (EventBridge Pipes,
    "Amazon EventBridge Pipes input transformation"): a quoted placeholder becomes the value
    as a JSON string, an unquoted one the JSON value. Pipes parse a JSON SQS `body` so it can
    be used as an object; a body that is not JSON stays a string (here: a JSON string)."""
    body = record.get("body")
    try:
        parsed = json.loads(body) if isinstance(body, str) else body
    except ValueError:
        parsed = body
    source = {**record, "body": parsed}

    def value(match: re.Match) -> str:
        quoted, bare = match.groups()
        found = _path_value(source, quoted or bare)
        return json.dumps(str(found)) if quoted else json.dumps(found)

    return json.loads(_PLACEHOLDER.sub(value, template))


def _path_value(source: Any, path: str) -> Any:
    """A dotted JSONPath ($.a.b) into `source`; None where it leads nowhere."""
    for name in path.removeprefix("$").strip(".").split("."):
        source = source.get(name) if isinstance(source, dict) and name else source
    return source
