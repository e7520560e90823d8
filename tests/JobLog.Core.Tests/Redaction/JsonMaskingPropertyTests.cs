using System.Text;
using CsCheck;
using JobLog.Redaction;
using NUnit.Framework;

namespace JobLog.Core.Tests.Redaction;

/// <summary>
/// Generated nested JSON with secrets at random depths (under sensitive names, escaped names, and inside connection
/// strings and URLs of ordinary values), duplicate keys, lone surrogates and a random truncation point: no secret
/// survives what the ledger stores (the recorder's masking, then the writer's pass).
/// </summary>
public class JsonMaskingPropertyTests
{
    private const string Secret = "SEKRIT";

    private static readonly string[] s_sensitiveKeys =
        ["password", "token", "sig", "otp", "code_verifier", "X-Amz-Signature", "cvc", "pwd", "api_key", "session_id", "pass\\u0077ord", "Authorization"];

    private static readonly string[] s_plainKeys = ["user", "note", "items", "a", "b", "data", "value", "id", "user"];

    private static readonly Redactor s_redactor = new(new RedactionOptions { MaxBodyLength = 1_000_000 });

    [Test]
    public void StoredText_OfGeneratedHostileJson_NeverHoldsAPlantedSecret()
    {
        Gen.Select(Gen.Int[0, 1_000_000].Array[20, 400], Gen.Double[0.0, 1.0], Gen.Bool)
            .Sample(
                sample =>
                {
                    var (choices, cutAt, cut) = sample;
                    var json = new Builder(choices).Document();
                    var text = cut ? json[..(int)(cutAt * json.Length)] : json;

                    var stored = s_redactor.Stored(s_redactor.MaskText(text, null, cutAtCapture: cut), StoredTextKind.Body) ?? "";

                    if (stored.Contains(Secret, StringComparison.Ordinal))
                    {
                        throw new AssertionException($"A secret survived.\nInput:  {text}\nStored: {stored}");
                    }
                },
                iter: 3000);
    }

    [Test]
    public void StreamingPass_OfGeneratedHostileJson_NeverHoldsAPlantedSecret()
    {
        var masking = new JsonMasking(
            new SensitiveNames(new RedactionOptions().SensitiveNames), new TextPatterns(new SensitiveNames(new RedactionOptions().SensitiveNames), new RedactionOptions()), new RedactionOptions());
        Gen.Select(Gen.Int[0, 1_000_000].Array[20, 400], Gen.Double[0.0, 1.0])
            .Sample(
                sample =>
                {
                    var (choices, cutAt) = sample;
                    var json = new Builder(choices).Document();
                    var text = json[..(int)(cutAt * json.Length)];

                    var masked = masking.MaskStreaming(text);

                    if (masked.Contains(Secret, StringComparison.Ordinal))
                    {
                        throw new AssertionException($"A secret survived.\nInput:  {text}\nMasked: {masked}");
                    }
                },
                iter: 3000);
    }

    /// <summary>Turns a list of choices into JSON text (so that CsCheck shrinks the choices, and with them the document).</summary>
    private sealed class Builder(int[] choices)
    {
        private readonly StringBuilder _sb = new();
        private int _next;
        private int _serial;

        public string Document()
        {
            Value(0, sensitive: false);
            return _sb.ToString();
        }

        private int Next(int max) => _next < choices.Length ? choices[_next++] % max : 0;

        private void Value(int depth, bool sensitive)
        {
            var kind = depth > 40 ? 0 : Next(6);
            switch (kind)
            {
                case 0 or 1:
                    Scalar(sensitive);
                    break;
                case 2:
                    _sb.Append('[');
                    for (var i = Next(4); i > 0; i--)
                    {
                        Value(depth + 1, sensitive);
                        _sb.Append(i > 1 ? "," : "");
                    }

                    _sb.Append(']');
                    break;
                default:
                    _sb.Append('{');
                    for (var i = Next(5); i > 0; i--)
                    {
                        var secretName = Next(3) == 0;
                        var key = secretName ? s_sensitiveKeys[Next(s_sensitiveKeys.Length)] : s_plainKeys[Next(s_plainKeys.Length)];
                        _sb.Append('"').Append(key).Append("\":");
                        Value(depth + 1, sensitive || secretName);
                        _sb.Append(i > 1 ? "," : "");
                    }

                    _sb.Append('}');
                    break;
            }
        }

        private void Scalar(bool sensitive)
        {
            var n = _serial++;
            if (sensitive)
            {
                _sb.Append(Next(4) == 0 ? $"{n}" : $"\"{Secret}{n} \\\" \\u00e9\"");
                return;
            }

            _sb.Append(Next(8) switch
            {
                0 => $"\"Server=db;Password={Secret}{n};Database=x\"",
                1 => $"\"https://ann:{Secret}{n}@host.example/p\"",
                2 => $"\"https://b.example/f?X-Amz-Signature={Secret}{n}&x=1\"",
                3 => "\"\\ud800\"",
                4 => $"{n}",
                5 => "true",
                _ => $"\"plain {n}\"",
            });
        }
    }
}
