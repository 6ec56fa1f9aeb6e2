"""The README's Python example: stream an agent's reply, then read its session's transcript.

Run it against `meshscope serve agents --agents analyst --port 50051` (tests/integration/test_readme.py does).
"""

import asyncio

from meshscope.services.runtime.client import AgentClient


async def main() -> None:
    async with AgentClient("127.0.0.1:50051") as client:
        async for event in client.invoke("analyst", "Compare gRPC and REST", session_id="s1"):
            if event.HasField("text_delta"):
                print(event.text_delta.delta, end="", flush=True)
        print()
        async for line in client.history("s1"):  # the session's transcript, read a page at a time
            print(f"[{line.name}] {line.text}")


asyncio.run(main())
