"""Small real-shaped engine-run files shared by the validate tests."""

# vLLM 0.19.0 `vllm bench serve --save-result --save-detailed` (serve.py:984-1000, 1828-1857)
VLLM = {
    "date": "20260820-231939", "endpoint_type": "vllm", "backend": "vllm", "label": None,
    "model_id": "meta-llama/Llama-3.1-8B", "tokenizer_id": "meta-llama/Llama-3.1-8B",
    "num_prompts": 4, "request_rate": 10.0, "burstiness": 1.0, "max_concurrency": None,
    "duration": 2.0, "completed": 3, "failed": 1, "total_input_tokens": 450,
    "total_output_tokens": 7, "request_throughput": 1.5, "request_goodput": None,
    "output_throughput": 3.5, "total_token_throughput": 228.5,
    "input_lens": [100, 200, 300, 150], "output_lens": [3, 1, 0, 3],
    "ttfts": [0.1, 0.2, 0.0, 0.15], "itls": [[0.05, 0.05], [], [], [0.1, 0.2]],
    "start_times": [1000.5, 1000.0, 1000.7, 1001.0],
    "generated_texts": ["a b c", "x", "", "d e f"],
    "errors": ["", "", "Traceback: connection reset", ""],
    "max_output_tokens_per_s": 4.0, "max_concurrent_requests": 3, "rtfx": 0.0,
}

# SGLang 0.5.23 `bench_serving --output-details` (benchmark/serving.py:1855-1966)
SGLANG = {
    "tag": None, "backend": "sglang", "dataset_name": "sharegpt", "request_rate": 2.0,
    "max_concurrency": None, "sharegpt_output_len": None, "random_input_len": 1024,
    "random_output_len": 1024, "random_range_ratio": 0.0,
    "server_info": {"model_path": "meta-llama/Llama-3.1-8B", "max_running_requests": 128,
                    "chunked_prefill_size": 4096, "page_size": 1, "tp_size": 1, "dp_size": 1,
                    "ep_size": 1, "kv_cache_dtype": "auto", "disable_radix_cache": False,
                    "mem_fraction_static": 0.85, "max_total_num_tokens": 50000,
                    "version": "0.5.23"},
    "duration": 3.0, "completed": 2, "mean_ttft_ms": 150.0,
    "input_lens": [64, 32, 16], "output_lens": [2, 4, 0], "ttfts": [0.1, 0.2, 0.0],
    "itls": [[0.3], [0.1, 0.1, 0.1], []], "generated_texts": ["ab", "abcd", ""],
    "errors": ["", "", "Bad Gateway: "],
}

CSV = """request_id,arrival_s,input_tokens,output_tokens,ttft_ms,e2e_ms
r0,10.0,100,5,50.0,450.0
r1,9.5,40,1,20.0,20.0
r2,11.0,60,3,100.0,300.0
"""
