using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Bench;

/// <summary>
/// Encode throughput of <see cref="HfTokenizer"/> on ~1 MB of mixed text (English, numbers, code, accents, CJK, emoji),
/// for the GPT-2-style fixture tokenizer and the same vocabulary behind Llama 3's Split regex; and, on the GPT-2-style
/// file, Microsoft.ML.Tokenizers' BpeTokenizer built from the same vocabulary and merges, with how many texts give
/// identical ids.
/// </summary>
public sealed class TokenizerBench : IBenchmark
{
    private const string Llama3Regex =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private const string Gpt2Regex = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public string Name => "tokenizer";

    public string Description => "HfTokenizer encode throughput (chars/s, tokens/s) on ~1 MB of text; Microsoft.ML.Tokenizers BPE alongside";

    public Task<IReadOnlyList<BenchFigure>> RunAsync(CancellationToken cancellationToken = default)
    {
        string fixture = FindFixture(Path.Combine("tests", "fixtures", "bytelevel-bpe", "bytelevel-bpe-tokenizer.json"));
        var documents = Corpus(targetChars: 1_000_000);
        long chars = documents.Sum(d => (long)d.Length);
        var figures = new List<BenchFigure>
        {
            new(Name, "corpus", "size", chars, "chars"),
            new(Name, "corpus", "documents", documents.Count, "documents"),
        };

        var json = JsonNode.Parse(File.ReadAllText(fixture))!;
        json["pre_tokenizer"] = JsonNode.Parse($$"""
            {"type": "Sequence", "pretokenizers": [
              {"type": "Split", "pattern": {"Regex": {{JsonValue.Create(Llama3Regex)!.ToJsonString()}}}, "behavior": "Isolated", "invert": false},
              {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}
            """);
        string llama3Style = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-bench-tokenizer-").FullName, "tokenizer.json");
        File.WriteAllText(llama3Style, json.ToJsonString());

        List<IReadOnlyList<int>>? gpt2Ids = null;
        foreach (var (label, path) in new[] { ("gpt2-style 768 vocab", fixture), ("llama3-regex 768 vocab", llama3Style) })
        {
            cancellationToken.ThrowIfCancellationRequested();
            var load = Stopwatch.StartNew();
            var tokenizer = HfTokenizer.Load(path);
            figures.Add(new(Name, label, "load", load.Elapsed.TotalMilliseconds, "ms"));
            // First pass: empty word cache. Then three timed passes with the cache warm (steady state).
            var (coldSeconds, tokens, ids) = EncodeAll(documents, d => tokenizer.Encode(d, addSpecialTokens: false));
            figures.Add(new(Name, label + ", cold cache", "chars/s", chars / coldSeconds, "chars/s"));
            double warmSeconds = double.MaxValue;
            for (int pass = 0; pass < 3; pass++) warmSeconds = Math.Min(warmSeconds, EncodeAll(documents, d => tokenizer.Encode(d, addSpecialTokens: false)).Seconds);
            figures.Add(new(Name, label, "chars/s", chars / warmSeconds, "chars/s"));
            figures.Add(new(Name, label, "tokens/s", tokens / warmSeconds, "tokens/s"));
            figures.Add(new(Name, label, "chars/token", (double)chars / tokens, "chars"));
            gpt2Ids ??= ids;
        }

        // Load time at Qwen2 scale: a synthetic byte-level file with 151,643 tokens (256 bytes + 151,387 merges).
        string large = WriteSyntheticLargeTokenizer(json, mergeCount: 151_387);
        var largeLoad = Stopwatch.StartNew();
        var largeTokenizer = HfTokenizer.Load(large);
        figures.Add(new(Name, "synthetic 151k vocab", "load", largeLoad.Elapsed.TotalMilliseconds, "ms"));
        double largeSeconds = double.MaxValue;
        long largeTokens = 0;
        for (int pass = 0; pass < 2; pass++)
        {
            var r = EncodeAll(documents, d => largeTokenizer.Encode(d, addSpecialTokens: false));
            largeSeconds = Math.Min(largeSeconds, r.Seconds);
            largeTokens = r.Tokens;
        }
        figures.Add(new(Name, "synthetic 151k vocab", "chars/s", chars / largeSeconds, "chars/s"));
        figures.Add(new(Name, "synthetic 151k vocab", "tokens/s", largeTokens / largeSeconds, "tokens/s"));

        // Microsoft.ML.Tokenizers, built from the same tokenizer.json (GPT-2 regex, byte-level, special tokens).
        var ml = BuildMicrosoftBpe(fixture);
        var (mlCold, mlTokens, mlIds) = EncodeAll(documents, d => ml.EncodeToIds(d));
        double mlWarm = double.MaxValue;
        for (int pass = 0; pass < 3; pass++) mlWarm = Math.Min(mlWarm, EncodeAll(documents, d => ml.EncodeToIds(d)).Seconds);
        figures.Add(new(Name, "Microsoft.ML.Tokenizers BpeTokenizer, cold cache", "chars/s", chars / mlCold, "chars/s"));
        figures.Add(new(Name, "Microsoft.ML.Tokenizers BpeTokenizer", "chars/s", chars / mlWarm, "chars/s"));
        figures.Add(new(Name, "Microsoft.ML.Tokenizers BpeTokenizer", "tokens/s", mlTokens / mlWarm, "tokens/s"));
        int identical = 0;
        for (int i = 0; i < documents.Count; i++)
            if (gpt2Ids![i].SequenceEqual(mlIds[i])) identical++;
        figures.Add(new(Name, "Microsoft.ML.Tokenizers vs HfTokenizer", "documents with identical ids", identical, $"of {documents.Count}"));
        return Task.FromResult<IReadOnlyList<BenchFigure>>(figures);
    }

    private static (double Seconds, long Tokens, List<IReadOnlyList<int>> Ids) EncodeAll(List<string> documents, Func<string, IReadOnlyList<int>> encode)
    {
        var ids = new List<IReadOnlyList<int>>(documents.Count);
        long tokens = 0;
        var sw = Stopwatch.StartNew();
        foreach (string d in documents)
        {
            var e = encode(d);
            tokens += e.Count;
            ids.Add(e);
        }
        return (sw.Elapsed.TotalSeconds, tokens, ids);
    }

    /// <summary>
    /// A byte-level tokenizer.json with the fixture's pipeline and a vocabulary grown by merging random pairs of existing
    /// tokens: the size of Qwen2's, for load time (the merges are not a trained vocabulary).
    /// </summary>
    private static string WriteSyntheticLargeTokenizer(JsonNode template, int mergeCount)
    {
        var rng = new Random(7);
        var tokens = new List<string>();
        var vocab = new JsonObject();
        foreach (var (key, _) in template["model"]!["vocab"]!.AsObject())
        {
            if (key.Length != 1) continue;
            vocab[key] = tokens.Count;
            tokens.Add(key);
        }
        var merges = new JsonArray();
        var seen = new HashSet<string>(tokens, StringComparer.Ordinal);
        while (merges.Count < mergeCount)
        {
            // Mostly short tokens, as real vocabularies are.
            string a = tokens[(int)(tokens.Count * Math.Pow(rng.NextDouble(), 3))];
            string b = tokens[(int)(tokens.Count * Math.Pow(rng.NextDouble(), 3))];
            string merged = a + b;
            if (merged.Length > 16 || !seen.Add(merged)) continue;
            vocab[merged] = tokens.Count;
            tokens.Add(merged);
            merges.Add(new JsonArray(a, b));
        }
        var json = JsonNode.Parse(template.ToJsonString())!;
        json["added_tokens"] = new JsonArray();
        json["model"]!["vocab"] = vocab;
        json["model"]!["merges"] = merges;
        string path = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-bench-tokenizer-").FullName, "tokenizer.json");
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    private static BpeTokenizer BuildMicrosoftBpe(string path)
    {
        var json = JsonNode.Parse(File.ReadAllText(path))!;
        var vocab = json["model"]!["vocab"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<int>());
        var merges = json["model"]!["merges"]!.AsArray()
            .Select(m => m is JsonArray pair ? $"{pair[0]} {pair[1]}" : m!.GetValue<string>()).ToList();
        var specials = json["added_tokens"]!.AsArray().ToDictionary(t => t!["content"]!.GetValue<string>(), t => t!["id"]!.GetValue<int>());
        return BpeTokenizer.Create(new BpeOptions(vocab)
        {
            Merges = merges,
            ByteLevel = true,
            SpecialTokens = specials,
            PreTokenizer = new RegexPreTokenizer(new Regex(Gpt2Regex, RegexOptions.Compiled), specials),
        });
    }

    /// <summary>Deterministic mixed text: prose with contractions, numbers, code, accents, CJK and emoji, in documents of ~2 KB.</summary>
    private static List<string> Corpus(int targetChars)
    {
        string[] words =
        [
            "the", "of", "and", "to", "in", "is", "was", "that", "for", "it", "with", "as", "his", "on", "be", "at", "by",
            "this", "had", "not", "are", "but", "from", "or", "have", "an", "they", "which", "one", "you", "were", "her",
            "review", "movie", "harbor", "quiet", "performance", "director", "wonderful", "terrible", "unexpectedly",
            "preference", "dataset", "alignment", "tokenizer", "optimization", "gradient", "reward", "policy", "café",
            "naïve", "résumé", "Straße", "über", "größer", "日本語", "東京", "中文", "데이터", "привет", "мир", "😀", "👍🏽",
            "don't", "won't", "I'm", "they've", "she'll", "we'd", "it's", "HELLO", "World", "GPT-4o", "Llama-3", "Qwen2.5",
        ];
        string[] code = ["def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; i++) { sum += a[i]; }\n", "{\"key\": [1, 2, 3]}\n"];
        var rng = new Random(42);
        var documents = new List<string>();
        int total = 0;
        while (total < targetChars)
        {
            var sb = new StringBuilder();
            while (sb.Length < 2000)
            {
                int kind = rng.Next(20);
                if (kind == 0) sb.Append(code[rng.Next(code.Length)]);
                else if (kind == 1) sb.Append(' ').Append(rng.Next(1_000_000)).Append('.').Append(rng.Next(100));
                else if (kind == 2) sb.Append(".\n\n");
                else if (kind == 3) sb.Append(",  ");
                else sb.Append(sb.Length == 0 ? "" : " ").Append(words[rng.Next(words.Length)]);
            }
            documents.Add(sb.ToString());
            total += sb.Length;
        }
        return documents;
    }

    private static string FindFixture(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, relative);
            if (File.Exists(candidate)) return candidate;
        }
        string fromCwd = Path.GetFullPath(relative);
        return File.Exists(fromCwd) ? fromCwd : throw new FileNotFoundException($"{relative}: run the benchmark from the repository.", relative);
    }
}
