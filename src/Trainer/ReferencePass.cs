using System.Security.Cryptography;
using System.Text;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Models.Llama;
using PrefPipe.Models.Scoring;
using PrefPipe.Trainer.Data;
using static TorchSharp.torch;

namespace PrefPipe.Trainer;

/// <summary>
/// The reference model's log-probs for every pair, computed once before training and stored as an artifact keyed by a
/// fingerprint of the data (the exact token ids) and the reference model (config and weight headers); training reads
/// them and never runs the reference model per step. A later run with the same fingerprint reuses the artifact.
/// </summary>
public static class ReferencePass
{
    /// <summary>SHA-256 over the pairs' token ids and the reference model's config.json and weight file headers.</summary>
    public static string Fingerprint(IReadOnlyList<EncodedPair> pairs, string referenceDirectory)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var p in pairs)
        {
            sha.AppendData(Encoding.UTF8.GetBytes(p.Key));
            foreach (var ids in new[] { p.PromptIds, p.ChosenIds, p.RejectedIds })
            {
                sha.AppendData(BitConverter.GetBytes(ids.Length));
                foreach (int id in ids) sha.AppendData(BitConverter.GetBytes(id));
            }
        }
        foreach (string file in Directory.EnumerateFiles(referenceDirectory).Where(f => f.EndsWith(".json", StringComparison.Ordinal) || f.EndsWith(".safetensors", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            sha.AppendData(Encoding.UTF8.GetBytes(Path.GetFileName(file)));
            if (file.EndsWith(".safetensors", StringComparison.Ordinal))
            {
                // The header names every tensor with its dtype, shape and offsets; with the length it identifies the weights cheaply.
                using var stream = File.OpenRead(file);
                var head = new byte[Math.Min(stream.Length, 1 << 20)];
                stream.ReadExactly(head);
                sha.AppendData(head);
                sha.AppendData(BitConverter.GetBytes(stream.Length));
            }
            else
            {
                sha.AppendData(File.ReadAllBytes(file));
            }
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Reads the stored reference log-probs for these pairs, or computes and stores them.</summary>
    /// <returns>Rows by pair key, and whether they were reused.</returns>
    public static async Task<(IReadOnlyDictionary<string, ReferenceLogProbRow> Rows, bool Reused, string Path)> ComputeOrReuseAsync(
        IArtifactStore store, string prefix, IReadOnlyList<EncodedPair> pairs, string referenceDirectory, int batchSize,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(pairs);
        string fingerprint = Fingerprint(pairs, referenceDirectory);
        string path = $"{prefix}/reference_logps-{fingerprint[..16]}.parquet";
        if (await store.ExistsAsync(path, cancellationToken).ConfigureAwait(false))
        {
            var stored = await ParquetArtifacts.ReadAllAsync<ReferenceLogProbRow>(store, path, cancellationToken).ConfigureAwait(false);
            if (stored.Count == pairs.Count && pairs.All(p => stored.Any(s => s.PromptId == p.Key)))
                return (stored.ToDictionary(r => r.PromptId, StringComparer.Ordinal), true, path);
        }
        var rows = new List<ReferenceLogProbRow>(pairs.Count);
        using (var model = LlamaForCausalLM.Load(referenceDirectory))
        {
            int pad = model.Config.PadTokenId ?? model.Config.EosTokenIds.FirstOrDefault();
            double logVocab = Math.Log(model.Config.VocabSize);
            using var _ = no_grad();
            for (int start = 0; start < pairs.Count; start += batchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var chunk = pairs.Skip(start).Take(batchSize).ToList();
                using var scope = NewDisposeScope();
                var items = chunk.Select(p => ((IReadOnlyList<int>)p.PromptIds, (IReadOnlyList<int>)p.ChosenIds))
                    .Concat(chunk.Select(p => ((IReadOnlyList<int>)p.PromptIds, (IReadOnlyList<int>)p.RejectedIds))).ToList();
                using var batch = CompletionBatch.Build(items, pad, model.Device);
                var scores = CompletionScorer.Score(model, batch, withEntropy: true);
                var sums = scores.LogprobSum.cpu().data<float>().ToArray();
                var counts = scores.TokenCount.cpu().data<float>().ToArray();
                var entropy = scores.EntropySum!.cpu().data<float>().ToArray();
                int n = chunk.Count;
                for (int i = 0; i < n; i++)
                {
                    double hw = entropy[i] / (Math.Max(1, counts[i]) * logVocab);
                    double hl = entropy[n + i] / (Math.Max(1, counts[n + i]) * logVocab);
                    rows.Add(new ReferenceLogProbRow
                    {
                        PromptId = chunk[i].Key,
                        ChosenLogps = sums[i],
                        RejectedLogps = sums[n + i],
                        ChosenTokens = (int)counts[i],
                        RejectedTokens = (int)counts[n + i],
                        Dispersion = (hw + hl) / 2,
                    });
                }
                progress?.Report((Math.Min(start + batchSize, pairs.Count), pairs.Count));
            }
        }
        await ParquetArtifacts.WriteAsync(store, path, rows, new Dictionary<string, string> { ["fingerprint"] = fingerprint, ["reference_model"] = Path.GetFullPath(referenceDirectory) }, cancellationToken).ConfigureAwait(false);
        return (rows.ToDictionary(r => r.PromptId, StringComparer.Ordinal), false, path);
    }
}
