using System.Text;
using JobLog.Redaction;
using NUnit.Framework;

namespace JobLog.Core.Tests.Redaction;

public class TextBoundsTests
{
    // Not [TestCase] arguments: an attribute's strings are stored as UTF-8, which turns a lone surrogate into U+FFFD.
    private static readonly (string Text, string Expected)[] s_cases =
    [
        ("", ""),
        ("CustomerId=42, Amount=10.5", "CustomerId=42, Amount=10.5"),
        ("a\0b", "ab"),
        ("\0", ""),
        ("\uD800", "\uFFFD"),
        ("x\uDC00y", "x\uFFFDy"),
        ("ab\uD83D", "ab\uFFFD"),
        ("\uDE00\uD83D", "\uFFFD\uFFFD"),
        ("\uD83D\uDE00", "\uD83D\uDE00"),
        ("\uD83D\uDE00\0", "\uD83D\uDE00"),
        ("\0\uD83D\uDE00", "\uD83D\uDE00"),
        ("\uD83D\0\uDE00", "\uFFFD\uFFFD"),
        ("\0x\uDC00", "x\uFFFD"),
        ("\uD83D\uDE00\uD83D", "\uD83D\uDE00\uFFFD"),
        ("\uD83D\uD83D\uDE00", "\uFFFD\uD83D\uDE00"),
    ];

    [Test]
    public void Sanitize_RemovesNulAndReplacesLoneSurrogates_KeepingPairs()
    {
        foreach (var (text, expected) in s_cases)
        {
            Assert.That(TextBounds.Sanitize(text), Is.EqualTo(expected), $"text: {Escaped(text)}");
        }
    }

    [Test]
    public void Sanitize_TextWithNothingToRepair_IsTheSameInstance()
    {
        var text = "CustomerId=42, Amount=10.5, Currency=EUR, Reference=order-42 \uD83D\uDE00 é";
        Assert.That(TextBounds.Sanitize(text), Is.SameAs(text));
    }

    /// <summary>
    /// Every text of up to six characters from NUL, a letter and high and low surrogates (and longer ones, so that the
    /// vectorized searches see whole vectors), against the definition read one character at a time.
    /// </summary>
    [Test]
    public void Sanitize_EveryShortMixOfNulSurrogatesAndText_MatchesTheCharacterByCharacterDefinition()
    {
        char[] alphabet = ['a', '\0', '\uD83D', '\uDE00'];
        var checkedTexts = 0;
        foreach (var text in Texts(alphabet, 6))
        {
            foreach (var padded in new[] { text, new string('x', 40) + text, text + new string('y', 40) })
            {
                Assert.That(TextBounds.Sanitize(padded), Is.EqualTo(Reference(padded)), $"text: {Escaped(padded)}");
                checkedTexts++;
            }
        }

        Assert.That(checkedTexts, Is.EqualTo(3 * (1 + 4 + 16 + 64 + 256 + 1024 + 4096)));
    }

    private static IEnumerable<string> Texts(char[] alphabet, int maxLength)
    {
        var current = new List<string> { "" };
        for (var length = 0; length <= maxLength; length++)
        {
            foreach (var text in current)
            {
                yield return text;
            }

            current = [.. current.SelectMany(t => alphabet.Select(c => t + c))];
        }
    }

    private static string Reference(string text)
    {
        var sb = new StringBuilder(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\0')
            {
                continue;
            }

            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                sb.Append(c).Append(text[i + 1]);
                i++;
            }
            else
            {
                sb.Append(char.IsSurrogate(c) ? '\uFFFD' : c);
            }
        }

        return sb.ToString();
    }

    private static string Escaped(string text) => string.Concat(text.Select(c => c is >= ' ' and <= '~' ? c.ToString() : $"\\u{(int)c:X4}"));
}
