"""Child-process check for test_turn_probe: the probe's batched, prefix-cached turns and plain
greedy generation of each whole prompt, in one MLX process with the fast BLAS (as the probe's own
child runs). Prints one JSON line.

    python tests/evaluation/turn_probe_check.py MODEL_DIR PROMPTS.json MAX_TOKENS
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    from mlx_lm import load, stream_generate

    from punie.evaluation.turns import generate_turns

    model, prompts_file, max_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
    prompts = json.loads(Path(prompts_file).read_text(encoding="utf-8"))
    batched = generate_turns(model, None, prompts, max_tokens=max_tokens)
    lm, tokenizer = load(model)
    plain = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template(
            prompt["messages"], tools=prompt["tools"], add_generation_prompt=True, tokenize=False
        )
        steps = list(stream_generate(lm, tokenizer, text, max_tokens=max_tokens))
        plain.append(
            {"text": "".join(s.text for s in steps), "ended": steps[-1].finish_reason == "stop"}
        )
    print(json.dumps({"batched": batched, "plain": plain}))


if __name__ == "__main__":
    main()
