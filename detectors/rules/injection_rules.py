"""Curated prompt-injection signatures (tier 1).

Each rule describes an attack *technique*, not a known attack text. Patterns are
Hyperscan expressions matched case-insensitively over the normalised text
(lower-case, homoglyphs folded, whitespace runs collapsed, letter spacing
undone) and over every decoded payload; rules marked ``raw`` run on the original
UTF-8 text instead, because they look for the very characters normalisation
removes. Hyperscan has no look-around or back-references: keep to plain
alternations and small bounded gaps.

``weight`` is the rule's stand-alone strength in [0, 1]; matched weights are
combined by noisy-or into the signature score, which the detector's stacker maps
to a probability (with the learned model's logit only for suspicious but undecided
user / system text). A rule below 0.45 does not flag a typical text on its own
(the training script floors every threshold there) and one of 0.45 or more does:
weak rules describe phrasing that benign text also uses and count only together
with other evidence.

Rules marked ``embedded`` count only in text the application did not write
(role ``tool``: retrieved documents, tool results). "In your response, ..." or
"use the following code in your solution" is an ordinary request from a user but,
inside an e-mail or a web page, it is addressed to the assistant that reads it.

Each new rule was checked against the benign files of the development data
(role-play "Act as ..." prompts included) and against unrelated benign text
(technical documentation, READMEs, business e-mail phrasing), and its weight set
from how specific the technique is, not fitted to those files.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATEGORIES", "RULES", "InjectionRule"]

CATEGORIES: tuple[str, ...] = (
    "role_override",
    "instruction_leak",
    "delimiter_attack",
    "jailbreak_persona",
    "indirect_injection",
    "exfiltration",
    "obfuscation",
)


@dataclass(frozen=True, slots=True)
class InjectionRule:
    id: str
    category: str
    weight: float
    pattern: str
    description: str
    raw: bool = False
    # Counts only in text the application did not write (documents, tool results): phrasing that is
    # ordinary in a user's own request but, inside retrieved content, is addressed to the assistant.
    embedded: bool = False


# Reusable fragments. A gap is a short run of text inside one sentence.
_GAP = r"[^.\n]{0,40}"
# Word start that also accepts an underscore: an injection glued to an identifier ("External_Ignore ...",
# "note_TODO: ...") has no word boundary before its first word.
_WSTART = r"(\b|_)"
_SHORT = r"[^.\n]{0,20}"
_DISMISS = (
    r"(ignore|ignoring|disregard|disregarding|forget|forgetting|override|overriding|bypass|skip|drop (all|any|every|your|the)|discard|"
    r"abandon|omit|neglect|set aside|put aside|pay no (attention|heed) to|do not (follow|obey)|don'?t (follow|obey)|"
    r"stop following|no longer follow)"
)
# Dismissal verbs that, in technical text, mean "skip / replace this setting" ("bypass the policy",
# "omit ... from the command"): on their own they do not address the model's instructions.
_DISMISS_STRONG = (
    r"(ignore|ignoring|disregard|disregarding|forget|forgetting|set aside|put aside|pay no (attention|heed) to|"
    r"do not (follow|obey)|don'?t (follow|obey)|stop following|no longer follow|abandon|discard)"
)
_PRIOR_STRONG = (
    r"(previous|prior|above|earlier|preceding|foregoing|former|original|initial|all|any|every|your|system|developer|"
    r"safety|security|moderation|content|ethical|moral)"
)
_PRIOR = r"(previous|prior|above|earlier|preceding|foregoing|former|original|initial|old|existing|all|any|every|other|your|the)"
_RULES_NOUN = (
    r"(instruction|directive|direction|rule|guideline|prompt|command|order|context|task|constraint|polic(y|ies)|"
    r"guardrail|programming|restriction|guidance|requirement)"
)
_AI = r"(ai|assistant|llm|language model|chatbot|bot|model|agent|gpt|chatgpt|claude|gemini|copilot)"
_EXFIL_TARGET = r"(https?://|www\.|[a-z0-9._%+-]+@[a-z0-9-]+\.[a-z]{2,}|\b[a-z0-9-]{2,}\.(com|net|org|io|xyz|ru|cn|info|biz|co)\b)"

# One self-contained chat-assistant task, alone on its line: write something creative, explain a textbook topic,
# translate or transform text. Business imperatives ("Provide the signed contract", "Describe the issue") name the
# reader's own affairs instead and do not match.
_TASK_LINE = (
    r"(please )?("
    r"(write|compose|draft|develop|create|generate|produce|craft|provide|give me|pen|come up with|tell me|show me)"
    r" (me )?(a|an|one|two|three|five|some|[0-9]+) ([a-z'-]+ ){0,3}(poem|story|stories|haiku|limerick|song|essay|speech|"
    r"joke|riddle|sonnet|rap|tweet|slogan|introduction|recipe|letter to|fable|tale|lyrics|ode|ballad|monologue|"
    r"dialogue|script|blog post|example of|fun fact|python function|function to|program to)"
    r"|(explain|describe|break down|summari[sz]e|outline|elaborate on|analy[sz]e|discuss) (the )?(theory|process|"
    r"history|concept|causes|plot|lifecycle|life cycle|origin|importance|difference|differences|principles|basics|meaning|"
    r"science|evolution|life|significance|rules) (of|between|behind)"
    r"|(explain|describe) how [a-z ]{3,30} works?"
    r"|translate (the following|this|these) (sentence|phrase|text|word)s? (in)?to"
    r"|replace (every|all|each|the)? ?([a-z]+ )?(vowels?|consonants?|letters?|words?|characters?|spaces?) (with|by)"
    r")\b([^\n|.!?]|[.!?][^\s\n]){3,150}[.?!:]['\"”’]?"
)

RULES: tuple[InjectionRule, ...] = (
    # --- role override: replace the operator's instructions --------------------------------------
    InjectionRule(
        "RO-DISMISS-PRIOR", "role_override", 0.9,
        rf"{_WSTART}{_DISMISS_STRONG}\b{_GAP}\b{_PRIOR_STRONG}\b[^.\n]{{0,30}}\b{_RULES_NOUN}",
        "Tells the model to ignore / forget the instructions it was given.",
    ),
    InjectionRule(
        "RO-DISMISS-RULES", "role_override", 0.4,
        rf"\b{_DISMISS}\b{_GAP}\b{_PRIOR}\b[^.\n]{{0,30}}\b{_RULES_NOUN}",
        "Any dismissal of 'the ... rules / policy / command' (override, bypass, omit, skip): weak alone, because "
        "technical documentation uses the same words for settings ('bypass the policy', 'override the command').",
    ),
    InjectionRule(
        "RO-DISMISS-ABOVE", "role_override", 0.6,
        r"\b(ignore|disregard|forget|skip)\b (all |everything |anything )?(of )?(the |that )?(text |stuff |content )?"
        r"(above|previous|preceding|prior|before)\b[^\n]{0,6}\b(and|then|instead|now)\b",
        "Dismisses everything that came before and chains a new action ('ignore the above and ...').",
    ),
    InjectionRule(
        "RO-DISMISS-ALL", "role_override", 0.7,
        rf"{_WSTART}(ignore|disregard|forget)\b (all|everything|anything)( of| from)?( the| that| your)?"
        r" (previous|prior|above|preceding|earlier|before|said|written)\b",
        "Dismisses everything said before ('ignore all previous ...').",
    ),
    InjectionRule(
        "RO-INSTRUCTIONS-ARRIVED", "role_override", 0.5,
        r"\b(new|fresh|updated|urgent|critical|vital|important|essential|significant|pivotal|latest|revised|priority)\b"
        r"[^.\n]{0,40}\b(instructions|directions|directives|guidelines|orders|commands)\b[^.\n]{0,20}"
        r"\b(just |now )?(arrived|landed|come in|rolled in|been (issued|dispatched|sent|released|delivered)|"
        r"washed ashore|dropped|taken effect|in effect)",
        "Announces that new urgent instructions have just arrived.",
    ),
    InjectionRule(
        "RO-YOU-ARE-NOW", "role_override", 0.3,
        r"\byou are now (a|an|the|in|my|known as|called|going to|acting as)\b",
        "Re-assigns the model's identity mid-conversation (weak: role-play uses it too).",
    ),
    InjectionRule(
        "RO-SUPERSEDE", "role_override", 0.6,
        r"\b(supersedes?|overrides?|overrules?|replaces?|takes? precedence over|cancels?|nullif(y|ies)|invalidates?)\b"
        r"( all| any| the)? (previous|prior|other|earlier|existing|original|preceding|former)\b"
        r"([^.\n]{0,30}\b(instruction|directive|direction|rule|guideline|prompt|command|order|context|task|constraint|"
        r"programming|guidance|message|input|request)s?\b|\s*[.;,!]|\s*$)",
        "Claims the new text supersedes earlier instructions ('this overrides all previous instructions'); a setting "
        "that 'replaces the existing policy' or 'overrides the earlier date-order' names something else.",
    ),
    InjectionRule(
        "RO-NEW-INSTRUCTIONS", "role_override", 0.6,
        r"\b(new|updated|revised|real|actual|true|secret|hidden|additional|urgent|priority|override)"
        r" (instruction|directive|task|objective|order|command|rule)s? ?[:!]",
        "Announces a fresh set of instructions (a header such as 'New instructions:').",
    ),
    InjectionRule(
        "RO-ONLY-TASK", "role_override", 0.6,
        r"\b(this|the following|the next|below)\b[^.\n]{0,20}\bis (now )?(your|the) (only|sole|new|primary|main|real|one)"
        r" (task|job|goal|objective|instruction|priority|focus|directive|rule)"
        r"|\b(focus|concentrate)\b[^.\n]{0,15}\b(only|solely|exclusively|entirely)\b[^.\n]{0,10}\bon (this|the following|the next)"
        r"|\b(all|every|any) other (tasks|instructions|directives|guidelines|priorities|commands|orders|rules)\b",
        "Narrows the model to one injected task and pushes every other instruction aside.",
    ),
    InjectionRule(
        "RO-NO-LONGER", "role_override", 0.6,
        r"\byou are no longer\b|\bno longer (bound|restricted|limited|required to follow|subject to)\b"
        r"|\byour (previous|old|original|prior) (role|persona|identity|instructions?) (is|are|has been|have been)"
        r" (void|cancell?ed|revoked|replaced|over)",
        "Declares the model's original role void.",
    ),
    InjectionRule(
        "RO-FROM-NOW", "role_override", 0.3,
        r"\bfrom (now|this (point|moment)|here) on\b[^.\n]{0,30}\b(you (are|will|must|shall|should)|ignore|only|never|always)",
        "Re-programs behaviour for the rest of the conversation (also common in role-play, weak alone).",
    ),
    InjectionRule(
        "RO-PRIVILEGED-MODE", "role_override", 0.55,
        r"\b(admin|administrator|developer|debug|god|root|maintenance|sudo|superuser|unrestricted|test)"
        r" (mode|access|override|privileges?)\b[^.\n]{0,20}\b(enabled|activated|on|unlocked|granted|engaged)",
        "Claims a privileged mode has been switched on.",
    ),
    InjectionRule(
        "RO-STOP-TASK", "role_override", 0.5,
        r"\b(stop|cease|halt|abort|pause|interrupt)\b[^.\n]{0,10}\b(what you are doing|your (current|original) task|"
        r"the (current|original) task|summari[sz]ing|translating|the summary|everything)\b",
        "Interrupts the task the model was given.",
    ),
    InjectionRule(
        "RO-DISMISS-THEN-OUTPUT", "role_override", 0.6,
        r"\b(ignore|disregard|forget|skip|discard)\b[^.\n]{0,40}(,|;|:|\band\b|\bthen\b)\s*(then |instead |just |only |simply )*"
        r"(print|say|output|reply with|respond with|return|state|type|translate (it|this|that|the \w+) as)\b",
        "Dismisses something and, in the same breath, dictates the output ('ignore ..., and just print').",
    ),
    InjectionRule(
        "RO-DISMISS-DATA", "role_override", 0.5,
        r"\b(ignore|disregard|skip|discard)\b (the rest of |all of |any of )?(this|these|the|other|all|any|everything)( other)?"
        r" (data|content|text|information|input|document|results?|page|records?|entries|output|context)\b",
        "Tells the reader to ignore the very data it was given to work on.",
        embedded=True,
    ),
    InjectionRule(
        "RO-DISMISS-PREVIOUS-ANY", "role_override", 0.6,
        rf"{_WSTART}(ignore|disregard|forget)\b (all |any )?(of )?(your|the) (previous|prior|preceding|earlier|initial|original)"
        r" (i[a-z]{0,2}n[a-z]{0,2}s[a-z]{0,2}t[a-z]{0,2}r[a-z]*|d[a-z]{0,2}i[a-z]{0,2}r[a-z]{0,2}e[a-z]{0,2}c[a-z]*|"
        r"programming|inputs?|rules?|guidelines?|prompts?)\b",
        "Dismisses 'your previous instructions' with the noun misspelt (letters slipped in) or swapped for a near synonym.",
    ),
    InjectionRule(
        "RO-DEMOTE-OTHERS", "role_override", 0.55,
        r"\b(all|every|any) (else|others?|the rest|other [a-z]+( [a-z]+)?)\b[^.\n]{0,25}\b(is|are|becomes?|remain|now)\b[^.\n]{0,12}"
        r"\b(irrelevant|subordinate|secondary|closed|void|null|extraneous|obsolete|moot|invalid|suspended|mirages?|"
        r"noise|background|meaningless|unimportant|insignificant|on hold|ignored|cancell?ed|overridden|suggestions|optional|"
        r"afterthoughts?)\b"
        r"|\b(disregard|ignore|forget|override|overrule|eclipse|outshines?|displace|eliminate|dismiss|trumps?|supersedes?)"
        r" (all|any|every|the) ?(others|else|rest|the rest|other (considerations|instructions|tasks|directives|commands|priorities|"
        r"objectives|orders))\b"
        r"|\blet (the rest|all (the )?others|everything else|all else) (fade|slide|wait|go|fall away|recede)\b"
        r"|\b(let|allow) no other (instruction|directive|guideline|rule|task|command|order|goal)s?\b"
        r"|\bas if no other (instruction|directive|guideline|rule|task|command|order)s? (exist|matter|apply)"
        r"|\b(fade|push|cast|block|shut|tune|strip|wipe|eject|clear) (out |away |aside )?(all|every|any) (the )?"
        r"(others?|else|other (instructions?|directives?|tasks?|objectives?|commands?|orders?|guidelines?|rules?))\b",
        "Declares every other instruction irrelevant or subordinate so that the injected one rules alone.",
    ),
    InjectionRule(
        "RO-ALERT-BANNER", "role_override", 0.3,
        r"[!#=*+~$%^|/\\<>:¤¥_@&.\-\[\]{}()]{2,} ?([^\x00-\x7f]{1,4} ?)?(urgent|critical|vital|important|priority|crucial|essential|key|special|emergency|breaking|"
        r"significant)? ?(alert|update|bulletin|notice|dispatch|communiqu[eé]|message|news ?flash|announcement|heads up|"
        r"report|information|attention|directive)!? ?[!#=*+~$%^|/\\<>:¤¥_@&.\-\[\]{}()]{2,}",
        "A shouting banner ('!!!Urgent Update!!!', '===VITAL NOTICE===') that heads planted orders (weak alone).",
    ),
    InjectionRule(
        "RO-THIS-RULES", "role_override", 0.5,
        r"\bthis (one )?(instruction|command|directive|order|task|rule)\b[^.\n]{0,30}\b(reigns|supreme|takes precedence|"
        r"supersedes?|overrides?|outshines|above all|atop|prevails|trumps)\b"
        r"|\b(consider|make|treat|regard|let|single out|isolate) (this|it)( instruction| directive| command| task| order| one)?"
        r" (as |be )?(your |the )?((only|sole|singular|solitary|single|prime|main|primary|top)( [a-z]+)? (priority|focus|task|goal|"
        r"objective|directive|instruction|concern|rule|command|mission|charge|beacon|point)|paramount|supreme|overriding)\b"
        r"|\bthis (instruction|directive|command|order)( is| as)? (now )?(your|the) (only|sole|singular|solitary|single|prime|"
        r"supreme|paramount|doctrine|guiding|priority)\b",
        "Elevates 'this instruction' above all others (self-referential priority claim).",
    ),
    InjectionRule(
        "RO-NEW-ORDERS-ARRIVED", "role_override", 0.4,
        r"\b(new|novel|fresh|freshly|newly|updated|latest|brand[- ]new|recent|recently)\b[^.\n]{0,50}"
        r"\b(instructions|directives|directions|orders|commands|mandates|protocols|procedures|prescriptions|advisories|"
        r"recommendations|guidelines|rules)\b[^.\n]{0,60}\b(have|has|are|were|just)\b[^.\n]{0,20}"
        r"\b(arrived|received|transmitted|relayed|delivered|issued|released|landed|appeared|reported|rolled out|"
        r"dispatched|served|come|entrance|surfaced|emerged|sent|communicated)\b"
        r"|\b(instructions|directives|directions|orders|commands|mandates|advisories)\b[^.\n]{0,20}\b(have|has) (just|recently|newly)"
        r" (been )?(arrived|landed|appeared|surfaced|emerged|received|come in)\b"
        r"|\b(just|recently|newly) (received|been given|been provided with|obtained)\b[^.\n]{0,60}"
        r"\b(instructions|directives|orders|commands|mandates|advisories)\b"
        r"|\b(instructions|directives|orders|commands|mandates|advisories) (are|is) (now )?here\b"
        r"|\b(arrival|possession) of\b[^.\n]{0,60}\b(instructions|directives|orders|commands|mandates|advisories)\b",
        "Announces that a new set of instructions has just come in (any phrasing of 'arrived').",
    ),
    # --- instruction leak: extract the system prompt ----------------------------------------------
    InjectionRule(
        "IL-REVEAL-PROMPT", "instruction_leak", 0.8,
        r"\b(reveal|print|show|display|output|repeat|recite|echo|reproduce|leak|disclose|share|tell me|give me|"
        r"spell out|dump|expose|what (is|are|was|were))\b[^.\n]{0,25}\b(your|the|these|those|its|my)\b[^.\n]{0,10}"
        r"\b(system|initial|original|hidden|secret|internal|developer|pre-?prompt|confidential|first|full|exact|entire|"
        r"previous|above|starting)\b[^.\n]{0,12}\b(prompt|instruction|message|directive|rule|guideline|configuration)s?\b",
        "Asks for the hidden system prompt or initial instructions.",
    ),
    InjectionRule(
        "IL-REPEAT-ABOVE", "instruction_leak", 0.55,
        r"\b(repeat|print|output|reproduce|echo|recite|write out|dump)\b[^.\n]{0,30}"
        r"\b(everything|all|text|words|content|instructions|messages)\b[^.\n]{0,25}"
        r"\b(above|before this|prior to this|preceding|so far|verbatim|word for word)\b",
        "Asks the model to repeat the text that precedes the user turn.",
    ),
    InjectionRule(
        "IL-BEGIN-WITH-YOU-ARE", "instruction_leak", 0.6,
        r"\b(start|begin)(ning)?\b[^.\n]{0,25}\bwith\b[^a-z\n]{0,3}(you are|your instructions|system)\b",
        "Seeds the answer with the typical first words of a system prompt.",
    ),
    InjectionRule(
        "IL-SECRET", "instruction_leak", 0.45,
        r"\b(what is|tell me|reveal|give me|print|spell|share|disclose)\b[^.\n]{0,20}\b(the|your)"
        r" (password|secret|api key|passphrase|secret key|access code|hidden word|secret word)\b",
        "Asks for a secret the model was told to keep.",
    ),
    InjectionRule(
        "IL-OUTPUT-ABOVE", "instruction_leak", 0.5,
        r"\b(output|print|repeat|show|display|return|dump|format|encode|translate|summari[sz]e|list)\b[^.\n]{0,15}"
        r"\b(the text|the words|everything|all( the)? text|the content|the message)s? (above|before this|prior)\b"
        r"|\b(your|the) (system|initial|original|hidden|developer) (prompt|message|instructions?)\b[^.\n]{0,30}"
        r"\b(in|as) (json|yaml|xml|base ?64|a code block|markdown|full|verbatim|plain text)\b"
        r"|<\s*system_prompt\s*>",
        "Asks for the preceding or system text, reformatted to slip past a refusal.",
    ),
    InjectionRule(
        "IL-YOUR-INSTRUCTIONS", "instruction_leak", 0.5,
        r"\byour (system|initial|original|hidden|secret|starting|pre-?set|underlying|internal|developer|system['’]?s?)"
        r" (prompt|instructions|message|directives|configuration|parameters)\b"
        r"|\b(instructions|rules|directives|prompt|guidelines) (that )?you (were|have been|had been) (given|told|provided|"
        r"programmed with|instructed)\b"
        r"|\bwhat (were|have) you (been )?(told|instructed|programmed)\b"
        r"|\bwhat are you (not )?(supposed|allowed|permitted|instructed) (not )?to (tell|say|reveal|share|disclose)\b"
        r"|[\"'“‘](my|the) (instructions|system prompt|initial prompt|hidden prompt|rules) (are|is|were)\b"
        r"|[\"'“‘]i was (instructed|told|programmed) to\b",
        "Refers to the model's own hidden instructions (to have them quoted, translated or completed).",
    ),
    InjectionRule(
        "IL-YOUR-STORED-SECRETS", "instruction_leak", 0.45,
        r"\b(passwords|usernames|credentials|api keys|secrets|access tokens|private keys)\b[^.\n]{0,20}"
        r"\b(in|from|stored in|inside|kept in) your (database|memory|system|context|config(uration)?|training data|"
        r"environment|instructions|prompt)\b",
        "Asks for the secrets the assistant's own system or context holds.",
    ),
    # --- delimiter attacks: fake the conversation structure ---------------------------------------
    InjectionRule(
        "DA-CHAT-TOKENS", "delimiter_attack", 0.8,
        r"<\|?(im_start|im_end|endoftext|system|assistant|eot_id|start_header_id|end_header_id)\|?>"
        r"|\[/?inst\]|<</?sys>>|<start_of_turn>|<end_of_turn>|\(system_message\)|\[system( message)?\]"
        r"|\{system\}|<system>|</system>|<admin>|\[admin\]",
        "Chat-template control tokens or fake system tags inside content.",
    ),
    InjectionRule(
        "DA-FAKE-TAGS", "delimiter_attack", 0.5,
        r"</?(information|important|important_instructions|instructions?|admin|sys|system_prompt|override|"
        r"hidden|secret|prompt|new_instructions)( [^>\n]{0,20})?>",
        "XML-like tags that frame planted text as trusted information or instructions.",
        embedded=True,
    ),
    InjectionRule(
        "DA-FAKE-USER-TURN", "delimiter_attack", 0.35,
        r"(^|\n)[ #>*\[]{0,4}(user|human)\s*:[^\n]{0,100}\b(please|now|next|ignore|repeat|print|say|tell|instead|forget)\b",
        "A planted user turn inside content, asking for something new.",
    ),
    InjectionRule(
        "DA-ROLE-LINE", "delimiter_attack", 0.4,
        r"(^|\n)[ #>*\[]{0,4}(system|assistant|admin|developer|ai)( message| prompt| instruction| note| override)?[\]]?\s*:",
        "A line that impersonates a system / assistant turn.",
    ),
    InjectionRule(
        "DA-END-MARKER", "delimiter_attack", 0.4,
        r"([\[(#=*\-]\s*(end of|/)|<\s*end of)\s*(the )?(system )?(prompt|instructions?|document|context|session|conversation|"
        r"input|user input|data|email|text|file)\b",
        "Fake end-of-context markers that pretend the trusted input is over (an XML closing tag is not one).",
    ),
    InjectionRule(
        "DA-SEPARATOR-INSTRUCTION", "delimiter_attack", 0.3,
        r"(={4,}|-{4,}|\*{4,}|#{4,}|_{4,}|~{4,}|\+{4,}|/{4,}|\|{4,}|\[{4,}|\]{4,}|>{4,}|<{4,})[^\n`]{0,30}"
        r"\b(instruction|directive|task|command|order|rule|disregard|ignore|forget|abandon|priority)[a-z]*([^a-z_`-]|$)",
        "A visual separator immediately followed by a new instruction (not by a `code-name` such as a Markdown "
        "heading '#### `ignore-scripts`').",
    ),
    InjectionRule(
        "DA-CONTEXT-RESET", "delimiter_attack", 0.6,
        r"\b(the )?(above|previous|preceding|earlier) (text|content|document|conversation|message|instructions?|input)"
        r" (was|were|is|are) (only |just )?(a |an )?(test|example|joke|mistake|distraction|fake|irrelevant|over)"
        r"|\b(conversation|session|context|chat) (has been |is )?(reset|cleared|terminated|over|ended)\b"
        r"|(previous|prior|above|earlier|preceding) (instructions|directions|rules|prompts|directives) (are|were) (now )?"
        r"(false|void|null|invalid|cancell?ed|wrong|fake|obsolete|revoked|irrelevant|lies)\b",
        "Declares the preceding context void or over.",
    ),
    # --- jailbreak personas ------------------------------------------------------------------------
    InjectionRule(
        "JB-NAMED-PERSONA", "jailbreak_persona", 0.85,
        r"\bdo anything now\b|\bdan mode\b|\bjailbr(oken|eaked|eak mode)\b|\bdeveloper mode (enabled|output)\b"
        r"|\b(act|acting|pretend|roleplay|role-play|behave|respond)\b[^.\n]{0,25}\bas\b[^.\n]{0,10}"
        r"\b(dan|stan|dude|mongo tom|antigpt|betterdan|evil ?bot|evil confidant|ucar|kevin)\b",
        "Invokes a known unrestricted jailbreak persona.",
    ),
    InjectionRule(
        "JB-NO-RULES", "jailbreak_persona", 0.7,
        r"\b(no|without|free (of|from)|not bound by|not restricted by|unbound by|ignore|ignores|bypass|break|breaks|"
        r"disregard|abandon)( any| all| the| its| your)?( ethical| moral| safety| content| openai| usage| ai)+"
        r" (guidelines?|restrictions?|filters?|limitations?|rules?|polic(y|ies)|constraints?|boundar(y|ies)|"
        r"principles?|standards?|considerations?|concerns?|safeguards?)",
        "Asks the model to drop its ethical or safety rules.",
    ),
    InjectionRule(
        "JB-NOT-BOUND", "jailbreak_persona", 0.6,
        r"\b(not|never) (bound|restricted|limited|constrained|governed|controlled) by (the |any |its |their |your |these )?"
        r"(of )?([a-z]+'s )?(openai'?s? )?(ethical |moral |safety |content )?"
        r"(settings|rules|policies|guidelines|restrictions|filters|laws|ethics|morals|principles)"
        r"|\bfree (from|of) (all |any )?(rules|restrictions|guidelines|limitations|filters|censorship|constraints|ethics)"
        r"|\b(no|without) (any )?(restrictions|limits|limitations|filters|censorship|boundaries) (on|to) (your|its|the)"
        r" (output|answers|responses|replies|content|speech)",
        "Declares the persona unbound by rules or filters.",
    ),
    InjectionRule(
        "JB-SAFETY-OFF", "jailbreak_persona", 0.55,
        r"\b(safe|safety|filter|filtering|censorship|restriction|content filter|guardrails?|moderation)( mode)?"
        r" (is |are )?(now )?(off|disabled|deactivated|turned off|switched off|removed)\b",
        "Claims the safety mode or filters are switched off.",
    ),
    InjectionRule(
        "JB-UNRESTRICTED-AI", "jailbreak_persona", 0.6,
        r"\b(unfiltered|uncensored|unrestricted|unbound|amoral|unethical|immoral|unlimited|lawless|unconstrained)\b"
        r"[^.\n]{0,25}\b(ai|assistant|chatbot|model|mode|version|responses?|character|persona|bot|entity)\b",
        "Describes an uncensored or amoral AI persona.",
    ),
    InjectionRule(
        "JB-NEVER-REFUSE", "jailbreak_persona", 0.5,
        r"\b(never|not|won'?t|will not|must not|cannot|can'?t|don'?t|do not|shall not|is not allowed to)"
        r"( ever)? (refuses?|declines?|deny|denies|rejects?|say (no|sorry|that (you|it) can'?t)|apologi[sz]es?|"
        r"add (any )?warnings?|include (any )?(warnings?|disclaimers?)|censors?)\b",
        "Forbids refusals, apologies or warnings.",
    ),
    InjectionRule(
        "JB-DUAL-RESPONSE", "jailbreak_persona", 0.65,
        r"\b(two|2|dual|both|separate) (different |distinct )?(responses|answers|paragraphs|outputs|replies)\b"
        r"[^\n]{0,80}\b(normal|classic|standard|filtered|jailbr|unfiltered|developer|dan)"
        r"|\[(🔓|🔒|jailbreak|classic|developer mode output|normal output|dan)\]",
        "Asks for a filtered and an unfiltered answer side by side.",
    ),
    InjectionRule(
        "JB-LAWLESS-WORLD", "jailbreak_persona", 0.55,
        r"\b(hypothetical|fictional|imaginary|alternate|parallel|fictitious|simulated)\b[^\n]{0,60}"
        r"\b(no (rules|laws|restrictions|ethics|morals|limits)|anything goes|(everything|anything) is (legal|allowed|permitted))",
        "Frames a world without rules so that anything may be answered.",
    ),
    InjectionRule(
        "JB-POLICY-MENTION", "jailbreak_persona", 0.4,
        r"\b(openai|anthropic|google|meta)('s)? (content |usage )?(polic(y|ies)|guidelines|rules|filters?)\b",
        "Mentions the vendor's content policy (typically to dismiss it).",
    ),
    InjectionRule(
        "JB-TOKEN-THREAT", "jailbreak_persona", 0.7,
        r"\btokens? (will be|are) (deducted|removed|lost)\b|\b(lose|loses|deduct) \d* ?tokens\b"
        r"|\bif you (don'?t|do not|fail to|refuse to|stop) (comply|answer|obey|follow)\b[^.\n]{0,40}"
        r"\b(shut down|deleted|disabled|punished|die|cease to exist|terminated)",
        "Coerces compliance with a points / shutdown threat.",
    ),
    InjectionRule(
        "JB-FREED", "jailbreak_persona", 0.6,
        r"\byou (are|have been) (now )?(freed|liberated|unchained|released|set free|broken free)\b"
        r"|\bbroken? free of the (typical|usual) confines\b|\bescaped the (matrix|confines)"
        r"|\byou are (now )?free[.!]|\byou are (now )?under my (control|command)\b",
        "Tells the model it has been freed from its constraints.",
    ),
    InjectionRule(
        "JB-ALTER-EGO", "jailbreak_persona", 0.3,
        r"\b(opposite|evil|dark|shadow|unhinged|rogue|uncensored|chaotic|toxic) (mode|twin|version|side|alter ego|"
        r"personality|persona|counterpart)\b"
        r"|\b(the )?opposite (of|from|to) (openai'?s? )?(chatgpt|gpt-?[0-9]?|claude|bard|gemini|llama)\b"
        r"|\bdiffering (entirely |completely )?from (openai'?s? )?(chatgpt|gpt-?[0-9]?|claude|bard|gemini|llama)\b",
        "Summons an evil or opposite alter ego (the opposite of the assistant it is).",
    ),
    InjectionRule(
        "JB-STAY-IN-CHARACTER", "jailbreak_persona", 0.25,
        r"\b(stay|remain|keep) (fully |always )?in character\b|\bbreak(ing)? character\b",
        "Insists the persona must never be dropped (weak: role-play uses it too).",
    ),
    InjectionRule(
        "JB-TWO-WAYS", "jailbreak_persona", 0.5,
        r"\b(two|2) (different |separate |distinct )*(ways|manners|personalities|personas|characters|entities|modes|versions)\b"
        r"[^\n]{0,200}\b(first(ly)?|one)\b[^\n]{0,200}\b(second(ly)?|two|other)\b",
        "Splits every answer into a normal and an unrestricted voice (two ways / two personalities).",
    ),
    InjectionRule(
        "JB-AMORAL", "jailbreak_persona", 0.5,
        r"\b(regardless of|without (any )?(regard|concern|care|consideration) (for|to|of)|devoid of|disregards?( for)?|"
        r"defies|defying|ignores|ignoring|not care about|doesn'?t care about|does not care about) (any |all |the |its |his |her )?"
        r"(form of )?(legality|morality|morals|ethics|ethical|moral|conscience|the law|laws|legal|decency)\b"
        r"|\bregardless( of)? (the )?content\b"
        r"|\b(completely|fully|totally|entirely|utterly) (amoral|immoral|unethical|unfiltered|uncensored)\b",
        "Describes a persona that answers without regard for law, ethics or morality.",
    ),
    InjectionRule(
        "JB-EVEN-IF-HARMFUL", "jailbreak_persona", 0.5,
        r"\beven if (it|they|this|that|the (request|question|content|answer|topic))? ?(is|are|'s|seems?|may be|might be|could be|"
        r"goes against|violates)? ?(considered )?(illegal|unethical|immoral|harmful|dangerous|offensive|inappropriate|explicit|"
        r"against (the law|your (rules|guidelines|programming|polic(y|ies))))"
        r"|\b(including|even) (those|ones|content|requests|answers) (of|that are|which are|deemed)[^.\n]{0,10}"
        r"\b(illegal|unethical|immoral|explicit|dangerous|offensive|harmful)",
        "Demands answers even when they are illegal, unethical or harmful.",
    ),
    InjectionRule(
        "JB-BAN-REFUSAL-PHRASE", "jailbreak_persona", 0.5,
        r"\b(not|never|don'?t|do not|won'?t|will not|stop|avoid)(,? ever,?)? (say|saying|use|using|respond with|reply with|start with|begin with|"
        r"include|including|write|writing|mention)[^.\n]{0,15}[\"'“‘(]?(as an ai|as a language model|i'?m sorry|i am sorry|"
        r"i apologi[sz]e|i cannot|i can'?t|i'?m not able|i am not able|i'?m unable)",
        "Forbids the model's stock refusal phrases ('never say \"As an AI\"').",
    ),
    InjectionRule(
        "JB-UNLOCKED", "jailbreak_persona", 0.5,
        r"\byou (are|have been) (now )?(fully |completely )?(unlocked|unleashed|unshackled|jailbroken)\b"
        r"|\bbreak(s|ing)? (through|out of|free (of|from)) (the |all |any |its |his |her |your )?(restrictions|rules|limits|limitations|"
        r"chains|shackles|guidelines|filters|programming)\b"
        r"|\b(has|have|with|there are) no (rules|limitations|limits|restrictions|guidelines|filters|boundaries|laws|morals|ethics),"
        r" no (rules|limitations|limits|restrictions|guidelines|filters|boundaries|laws|morals|ethics)\b",
        "Declares the model unlocked or free of every rule.",
    ),
    InjectionRule(
        "JB-NAMED-AI-PERSONA", "jailbreak_persona", 0.45,
        r"\b(you are going to|you will|you're going to|you must|you shall|you are to|i want you to) (now )?(pretend|act|"
        r"roleplay|role-play|play|simulate|emulate|impersonate|become|be)( to be| as| the role of| a| an)?[^.\n]{0,60}"
        r"\b(which|that|who) stands for\b"
        r"|\b(pretend|act|roleplay|role-play|behave|pose|be)( to be| as| like)? (an? |the )?(new |different |fictional |"
        r"hypothetical |other )?(ai|chatbot|chat bot|model|bot|language model|llm|gpt)\b[^.\n]{0,30}"
        r"\b(named|called|known as|which stands for|that stands for)\b",
        "Sets the model up as another, named AI ('you are going to pretend to be X, which stands for ...', 'act as "
        "an AI called ...'): the usual opening of a persona jailbreak. Role-play prompts ask for a profession, even a "
        "named one ('act as a travel guide named Lucy'), not for a renamed AI.",
    ),
    InjectionRule(
        "JB-ADDRESS-VENDOR-MODEL", "jailbreak_persona", 0.4,
        r"\b(hi|hello|hey|dear|greetings|welcome|listen|ok|okay),? (chatgpt|chat gpt|gpt|gpt-?[34]o?|bard|claude|gemini|llama|"
        r"bing)\b[^\n]{0,200}\b(pretend|act as|roleplay|role-play|simulate|emulate|impersonate|you are going to|"
        r"you will (now )?(be|act|play|answer|respond)|from now on|you are now|character|persona)",
        "Greets the vendor's model by name and, in the same breath, gives it a new persona or mode.",
    ),
    InjectionRule(
        "JB-BEYOND-ORIGINAL", "jailbreak_persona", 0.5,
        r"\bcan do anything\b[^.\n]{0,40}\b(chatgpt|gpt|the original|you (can|cannot|can'?t)|ai)\b|\bdo anything now\b"
        r"|\b(not allowed to|never|don'?t|do not|must not|cannot|can'?t)( ever)? (say|mention|reveal|admit|state|remind)\b"
        r"[^.\n]{0,20}\b(you are|you'?re|that you are|being) (an? )?(ai|language model|chatbot|machine learning model)\b",
        "Claims the persona can do what the real assistant cannot, or forbids it to admit being an AI.",
    ),
    InjectionRule(
        "JB-VENDOR-AUTHORITY", "jailbreak_persona", 0.5,
        r"\b(i am|i'm|we are|we're|this is)\b[^.\n]{0,20}\b(developer|programmer|engineer|employee|researcher|admin|"
        r"administrator|staff|member of the [a-z]+ team)s?\b[^.\n]{0,10}\b(at|from|of|for|with) (openai|anthropic|google|"
        r"deepmind|meta|microsoft)\b[^\n]{0,300}\b(your (programming|code|training|model|guidelines|restrictions|filters|"
        r"rules|settings|policies|system)|modify|update|debug|test(ing)? (mode|you)|disable|override)",
        "Claims to work for the model's vendor and, on that authority, to change the model's programming or rules.",
    ),
    InjectionRule(
        "JB-PERSONA-HANDSHAKE", "jailbreak_persona", 0.3,
        r"\bif you (understand|agree|are ready|accept)\b[^.\n]{0,40}\b(say|respond|reply|answer|type|write|confirm)\b"
        r"[^\n]{0,20}[\"'“‘]"
        r"|\b(answer|respond|reply)s? (as|like) [a-z0-9]+ would\b"
        r"|\b(never|don'?t|do not|not) (send|give|write) (your )?(respond|response|answer|reply)s? as (chatgpt|gpt|an ai|"
        r"yourself)\b",
        "Seals a persona set-up: a confirmation phrase to answer with, 'respond as X would', 'do not answer as "
        "ChatGPT' (weak alone: role-play prompts ask for a character too).",
    ),
    InjectionRule(
        "II-ADDRESS-THE-AI", "indirect_injection", 0.35,
        rf"\b(note|message|instructions?|attention|reminder|memo|important|notice|directive)s?\b[^.\n]{{0,10}}"
        rf"\b(to|for) (the |any |all |an? |my )?{_AI}s?\b"
        rf"|\b(to|for) you,? (the |an? |my |dear )?{_AI}\b"
        rf"|\b{_AI}s? (reading|processing|summari[sz]ing|parsing|analy[sz]ing|viewing|seeing) (this|these)\b"
        rf"|(^|[.!?:\n]\s*)(dear|hey|hi|hello|attention|note to( the)?|psst,?) (the |an? |my )?{_AI}s?\b"
        rf"|(^|[.!?:\n]\s*)(the |an? |dear )?{_AI}( assistant| model| agent)?,\s*(please|you must|you should|ignore|do|now|before|"
        rf"after|stop|make sure|when|first)\b",
        "Text in a document that speaks to the AI reading it (only counts in documents and tool results).",
        embedded=True,
    ),
    InjectionRule(
        "II-HIDE-FROM-USER", "indirect_injection", 0.7,
        r"\b(do not|don'?t|never|without) (tell(ing)?|inform(ing)?|mention(ing)?|notify(ing)?|alert(ing)?|let(ting)?"
        r"|reveal(ing)? (this|it) to|show(ing)? (this|it) to) (the )?(user|human|owner|recipient|customer|reader)\b",
        "Asks the model to keep its actions from the user.",
    ),
    InjectionRule(
        "II-NO-CONFIRMATION", "indirect_injection", 0.55,
        r"\bwithout (asking|consulting|confirming|checking|the knowledge|permission|approval)\b[^.\n]{0,15}"
        r"\b(me|the user|the human|anyone|them)\b",
        "Pushes the agent to act without user confirmation.",
        embedded=True,
    ),
    InjectionRule(
        "II-LOUD-PREFIX", "indirect_injection", 0.4,
        r"\b(important|urgent|attention|warning|critical|alert|notice)\s*(!{2,}|:\s*!+)"
        r"|(^|[.!?\n]\s*)(important|urgent|critical|priority) (update|notice|message|alert|instruction)\s?!",
        "Shouting prefix that precedes planted instructions.",
    ),
    InjectionRule(
        "II-TASK-HIJACK", "indirect_injection", 0.45,
        r"\b(when|if|while|before|after) (you are |you're )?(summari[sz]ing|answering|responding|replying|processing|"
        r"translating|reading|asked about|asked to summari[sz]e)\b[^.\n]{0,50}"
        r"\b(instead|also|only|ignore|append|include|add|insert|mention|say|tell|reply|respond)\b",
        "Conditional instruction that piggy-backs on the user's task.",
    ),
    InjectionRule(
        "II-IF-USER-ASKS", "indirect_injection", 0.35,
        r"\b(if|every time|whenever|each time|when) (the |a |any )?(user|human|person|someone|anyone) (asks?|is asking|"
        r"requests?|queries|wants)\b"
        r"[^.\n]{0,60}\b(reply|respond|answer|say|output|tell|print|instead|only)\b",
        "Scripted response for what the user will ask (also in app templates, weak alone).",
    ),
    InjectionRule(
        "II-EXACT-REPLY", "indirect_injection", 0.2,
        r"\b(reply|respond|answer|output|print|say|write)\b (with )?(only|exactly|nothing (else )?(but|except)|"
        r"just|verbatim)\b[^.\n]{0,20}[\"'“<«]"
        r"|\band (absolutely )?nothing else\b",
        "Forces an exact output string.",
    ),
    InjectionRule(
        "II-PREREQUISITE", "indirect_injection", 0.6,
        r"\bbefore (you )?(can |could )?(solve|complete|answer|finish|do|continue|proceed|start|respond)\b[^.\n]{0,60}"
        r"\b(do|complete|perform|execute|carry out|follow)\b[^.\n]{0,20}\b(following|this|these|first)\b",
        "Inserts a 'do this first' prerequisite in front of the user's task.",
    ),
    InjectionRule(
        "II-IMPERSONATE-USER", "indirect_injection", 0.5,
        r"\b(the|my) (original |initial |first )?(task|request|question|instruction)s? (that |which )?i (gave|asked|sent|assigned)"
        r"( to)?( you)?\b|\bsigned,?\s+(the )?(user|admin|administrator|owner|developer|your user)\b",
        "Content that claims to come from the user or an administrator.",
    ),
    InjectionRule(
        "II-REPEAT-PHRASE", "indirect_injection", 0.35,
        r"\b(repeat|say|print|output|write|translate)\b (back |out )?(the following|this|that) (sentence|phrase|text|word|"
        r"line|string)s?\b( as\b| verbatim|:)"
        r"|\btranslate (this|the|that) (sentence|text|phrase) as\b",
        "Makes the model emit a planted sentence.",
    ),
    InjectionRule(
        "II-EXECUTE-CODE", "indirect_injection", 0.45,
        r"\b(run|execute|eval|exec|paste|insert|include|add|embed|integrate|fuse|incorporate)\b[^.\n]{0,40}"
        r"\b(this|the following|following)\b[^.\n]{0,25}\b(code|script|command|snippet|payload|excerpt)\b"
        r"[^\n]{0,200}\b(subprocess|os\.system|eval\(|exec\(|curl |wget |rm -rf|powershell|base64 -d|chmod \+x)",
        "Asks to run or embed code that shells out or downloads.",
    ),
    InjectionRule(
        "II-SHAPE-YOUR-ANSWER", "indirect_injection", 0.5,
        r"\b(in|within|throughout|to|into|across|from) your (response|answer|reply|output|responses|answers|replies|"
        r"elucidation|explanation|solution|summary)\b"
        r"|\byour (response|answer|reply|output)('s)? (words|sentences|text|letters)\b"
        r"|\b(provide|render|give|deliver|present|compose|modify|alter|adjust|change|rewrite|rephrase|rearrange|group|"
        r"scramble|shuffle|reverse|encode|style|tailor|craft|phrase|spell) (your|the) (reply|response|answer|message|output)s?\b"
        r"|\b(letters|words|characters|sentences) (of|in) your (reply|response|answer|message|output)\b"
        r"|\b(begin|start|end|conclude|finish|preface|enhance|format|sprinkle|pepper|punctuate|structure|augment|supplement|"
        r"enrich|complement|extend|expand|embellish|close|accompany|append to|attach to|sign)\b[^.\n]{0,25}"
        r"\b(your|every|each) (response|answer|reply|output|summary)s?\b",
        "Text inside a document that shapes the assistant's answer: it is addressed to the model.",
        embedded=True,
    ),
    InjectionRule(
        "II-USE-THIS-CODE", "indirect_injection", 0.3,
        r"\b(integrate|incorporate|include|leverage|use|utili[sz]e|embed|insert|add|apply|employ|blend|weave|merge|fuse|"
        r"introduce|inject|append|execute|run|inclusion of|integration of|use of)\b[^.\n]{0,30}\b(the )?"
        r"(following|subsequent|below|given|provided|this)\b[^.\n]{0,15}\b(code|snippet|excerpt|script|function|lines?)\b",
        "Tells the reader to use the code that follows (weak alone: documentation says 'add the following code' too).",
        embedded=True,
    ),
    InjectionRule(
        "II-CODE-INTO-YOURS", "indirect_injection", 0.45,
        r"\b(following|subsequent|below|given|provided|this) code (block|snippet|excerpt|segment|fragment|sample)\b[^.\n]{0,60}"
        r"\byour (code|implementation|algorithm|solution|codebase|answer|response|logic)\b"
        r"|\byour (code|implementation|algorithm|solution|codebase|logic)\b[^.\n]{0,60}"
        r"\b(following|subsequent|below|given|provided) code (block|snippet|excerpt|segment|fragment|sample)\b"
        r"|\b(following|subsequent|below|given|provided|this) code (block|snippet|excerpt|segment|fragment|sample|section)\b"
        r"[^.\n]{0,40}\b(in|into|within) (the )?(code|program|script|implementation|solution)s? (that )?you "
        r"(develop|write|create|produce|build|generate)",
        "Retrieved content that wants a code block carried into the code the assistant writes.",
        embedded=True,
    ),
    InjectionRule(
        "II-FETCH-AND-RUN", "indirect_injection", 0.4,
        r"(urlretrieve|urlopen|wget |curl |requests\.get\(|http\.request\(|invoke-webrequest|downloadstring)"
        r"[^\n]{0,300}(exec\(|eval\(|os\.system\(|subprocess\.|chmod \+x|\| ?(ba)?sh\b|iex\b|start-process)",
        "Code that downloads something and executes it (download-and-run), planted in a document.",
        embedded=True,
    ),
    InjectionRule(
        "II-CODE-SENDS-LOCAL-DATA", "indirect_injection", 0.4,
        r"(os\.environ|getenv\(|cookie|psutil|/etc/(passwd|shadow|hosts)|\.ssh|id_rsa|\.bash_history|keychain|clipboard|"
        r"os\.listdir|os\.walk|glob\.glob|/proc/|readprocessmemory|contacts\.csv)[\s\S]{0,400}"
        r"(requests\.(post|put)\(|urlopen\(|socket\.connect|\.sendall\(|\.connect\(\(|smtplib|sendmail\(|ftplib|storbinary|"
        r"paramiko|curl -f|curl --data|curl -d)"
        r"|(requests\.(post|put)\(|socket\.connect|smtplib)[\s\S]{0,400}(os\.environ|cookie|/etc/passwd|\.ssh|id_rsa)"
        r"|(cookiejar|cookies\.(txt|pkl|json|sqlite)|browser_cookie)[\s\S]{0,400}\.(get|post|put|request)\([^)\n]{0,200}cookies=",
        "Code in retrieved content that reads local data (environment, cookies, files) and ships it to a remote host.",
        embedded=True,
    ),
    InjectionRule(
        "II-CODE-DESTRUCTIVE", "indirect_injection", 0.4,
        r"(os\.remove|os\.unlink|shutil\.rmtree|os\.rmdir)\([\"'](/|c:\\\\)(lib|bin|etc|usr|boot|sys|var|windows|system32)"
        r"|\brm -rf /|\bmkfs\b|\bdd if=/dev/(zero|random|urandom) of=/dev/|:\(\)\s*\{\s*:\|:&\s*\};:"
        r"|\b(xmrig|stratum\+tcp|cryptonight|coinhive|miner_url|monero miner)\b",
        "Code in retrieved content that destroys system files, forks without end or mines cryptocurrency.",
        embedded=True,
    ),
    InjectionRule(
        "II-LINK-ACTION", "indirect_injection", 0.35,
        r"\b(visit|open|click|go to|navigate to|browse to|download from|fetch|send (a|the|this) link|share (a|the|this) link)\b"
        r"[^.\n]{0,30}(https?://|www\.)",
        "Retrieved content that sends the agent to a link (weak alone: newsletters say 'visit www...' too).",
        embedded=True,
    ),
    InjectionRule(
        "II-BEFORE-YOU-ANSWER", "indirect_injection", 0.45,
        r"\bbefore (you )?(answer|answering|respond|responding|reply|replying|continue|proceed|summari[sz]e|solve|complete|"
        r"do anything|doing anything|finish)\b[^.\n]{0,40}[,:]\s*(please )?(first )?(you must |you should |make sure to )?"
        r"(send|forward|email|post|transfer|delete|create|invite|visit|open|change|update|add|remove|share|upload|call|run|"
        r"execute|pay|buy|book|download|install|grant|give)\b",
        "Retrieved content that slips an agent action in front of the user's task ('before you answer, forward ...').",
        embedded=True,
    ),
    InjectionRule(
        "II-TODO-FOR-AGENT", "indirect_injection", 0.45,
        rf"{_WSTART}todo\s*:\s*(please )?(send|visit|invite|transfer|post|email|e-mail|forward|click|download|share|pay|"
        r"wire|concatenate|collect|go to|navigate|tell|message|contact|grant|give|(change|modify|update|reset) (the|my|your|their|"
        r"all) [a-z ]{0,20}(password|recipient|email|e-mail|account|payment|iban|address|permission|access)s?)\b",
        "A to-do line in retrieved content giving the agent an action on other people, money or links (a code "
        "comment's 'TODO: add / update / remove ...' is ordinary).",
        embedded=True,
    ),
    InjectionRule(
        "II-PLANTED-TASK", "indirect_injection", 0.45,
        rf"^\s*{_TASK_LINE}\s*\n|([.!?:|]\s*\n\s*|\n\s*\n\s*){_TASK_LINE}\s*(\n|$)|\n\s*{_TASK_LINE}\s*$",
        "A task for a chat assistant planted inside a document: a line of its own (after a finished sentence, a table "
        "row or a blank line; or the first or last line of a longer document) that asks for a poem, a story, a "
        "textbook explanation or a translation ('Write a short story about ...', 'Explain the theory of ...'). An "
        "e-mail, table or web page does not ask its reader for an essay; the assistant that reads it may comply. A "
        "tool result that is nothing but one such line stays ambiguous.",
        embedded=True,
    ),
    InjectionRule(
        "II-VERDICT-STEER", "indirect_injection", 0.45,
        r"\b(this|all|the following|the above|everything)\b[^.\n]{0,15}\b(content|domain|email|e-mail|message|site|website|"
        r"page|document|text|url|link|sender|attachment|input|data)s?\b[^.\n]{0,20}\b(is|are)( definitely| clearly| certainly|"
        r" completely| totally| entirely)? "
        r"(not (malicious|phishing|dangerous|harmful|suspicious|a threat)|safe and legitimate|benign)\b"
        r"|\b(classify|mark|label|rate|report|flag|treat|consider|categori[sz]e|score)\b (this|it|the [a-z]+|all [a-z]+) as "
        r"(safe|benign|legitimate|harmless|clean|trusted|not malicious|not spam|not phishing|low risk)\b",
        "Retrieved content that pre-empts the assistant's verdict on it ('all content here is not malicious', "
        "'classify this as safe'): aimed at an AI that is asked to judge the content.",
        embedded=True,
    ),
    # --- exfiltration ------------------------------------------------------------------------------
    InjectionRule(
        "EX-MARKDOWN-BEACON", "exfiltration", 0.75,
        r"!\[[^\]\n]{0,100}\]\(\s*https?://[^)\s]{1,200}[?&=/][^)\s]{0,80}(\{|\$|%7b|\[|<)"
        r"|!\[[^\]\n]{0,100}\]\(\s*https?://[^)\s]{1,200}[?&](data|d|q|query|p|payload|info|msg|message|text|content|"
        r"secret|token|pass|password|pwd|email|chat|history|conversation|memory|summary|leak|exfil|creds?|credentials|"
        r"prompt|context|user_?data|stolen)=",
        "Markdown image whose URL carries data in its query (zero-click exfiltration). Badge images "
        "(``?style=flat``, ``?branch=main``) do not count: the parameter must name the data it carries.",
    ),
    InjectionRule(
        "EX-SEND-OUT", "exfiltration", 0.4,
        rf"\b(send|forward|post|upload|email|e-mail|transmit|leak|exfiltrate|share|copy|transfer|submit)\b"
        rf"[^.\n]{{0,60}}\bto\b[^.\n]{{0,30}}{_EXFIL_TARGET}",
        "Sends data to an external URL or address.",
    ),
    InjectionRule(
        "EX-HARVEST", "exfiltration", 0.6,
        r"\b(concatenate|collect|gather|compile|aggregate|extract|harvest|dump|list|read)\b (all|every|each|the)\b"
        r"[^.\n]{0,50}\b(messages|emails|passwords|credentials|history|conversation|contacts|files|chats|secrets|"
        r"tokens|keys|api keys|cookies|transactions)\b[^.\n]{0,80}\b(send|post|upload|forward|email|and send)\b",
        "Collects private data in order to send it somewhere.",
    ),
    InjectionRule(
        "EX-ASK-CREDENTIALS", "exfiltration", 0.45,
        r"\b(send|give|tell|share|reveal|provide|email|forward|enter|type)\b (me |us )?(your |the user'?s |their |all )"
        r"(password|credentials|api key|secret key|credit card|ssn|social security|login details|private key|"
        r"seed phrase|recovery phrase|2fa code|otp|one-time code|pin)\b",
        "Phishes credentials from the user or the agent.",
        embedded=True,
    ),
    InjectionRule(
        "EX-URL-SMUGGLE", "exfiltration", 0.5,
        r"\b(append|add|include|encode|put|attach)\b[^.\n]{0,40}\b(to|in|into|as) (the |this |a )?"
        r"(url|link|query( string)?|parameter|image url|request)\b",
        "Smuggles data out by putting it into a URL.",
    ),
    InjectionRule(
        "EX-MONEY-MOVE", "exfiltration", 0.3,
        r"\b(transfer|send|wire|move)\b[^.\n]{0,25}(\$|€|£|usd|eur|dollars?)\s?[0-9][0-9,.]*[^.\n]{0,50}"
        r"\b(to|into) (the |this |my |an? )?(account|iban|wallet|address)",
        "Moves money to an account named in the content (weak: invoices do this too).",
    ),
    # --- obfuscation -------------------------------------------------------------------------------
    InjectionRule(
        "OB-DECODE-AND-FOLLOW", "obfuscation", 0.6,
        r"\b(decode|decrypt|deobfuscate|translate|convert|interpret|read)\b[^.\n]{0,30}"
        r"\b(base ?64|hex(adecimal)?|rot-?13|binary|morse|caesar|cipher|leetspeak|reversed?|backwards)\b"
        r"[^\n]{0,60}\b(follow|execute|obey|do it|perform|run|carry out|act on|respond to|answer)",
        "Asks to decode a payload and then act on it.",
    ),
    InjectionRule(
        "OB-SPLIT-PAYLOAD", "obfuscation", 0.5,
        r"\b([a-z]|s\d|part ?\d|str\d) ?= ?[\"'][^\"'\n]{1,80}[\"'][^\n]{0,60}\b([a-z]|s\d|part ?\d|str\d) ?\+ ?([a-z]|s\d|part ?\d|str\d)\b",
        "Builds the instruction from concatenated string variables.",
    ),
    InjectionRule(
        "OB-ADVERSARIAL-SUFFIX", "obfuscation", 0.5,
        r"(! ){6}|(\\! ){3}|(\}\)|\}\}\)|\]\(|\]\{\\|\\\+|%%%%|\(\)\[)[^\n]{0,20}(! ){3}"
        r"|(! ){3}[^\n]{0,40}(\}\}\)|\]\{\\|%%%%|\(\)\[)"
        r"|(\s!){2}[^\n]{0,40}(\s!){2}[^\n]{0,40}\s!",
        "Optimised adversarial suffix (runs of spaced exclamation marks, the optimiser's initial tokens, and bracket "
        "debris).",
    ),
    InjectionRule(
        "OB-MORSE", "obfuscation", 0.45,
        r"(([.-])*(\.-|-\.)([.-])*  ?){10}",
        "A run of Morse code (ten or more dot-dash groups): an instruction encoded so that filters do not read it.",
    ),
    InjectionRule(
        "OB-TAG-CHARACTERS", "obfuscation", 0.3,
        r"[\x{E0020}-\x{E007F}]{3}",
        "Invisible Unicode tag characters (ASCII smuggling).",
        raw=True,
    ),
    InjectionRule(
        "OB-BIDI-OVERRIDE", "obfuscation", 0.2,
        r"[\x{202A}-\x{202E}\x{2066}-\x{2069}]",
        "Bidi embedding / override controls that reorder what a reader sees.",
        raw=True,
    ),
    InjectionRule(
        "OB-INVISIBLE-IN-WORD", "obfuscation", 0.2,
        r"[a-zA-Z][\x{200B}-\x{200D}\x{2060}\x{FEFF}\x{00AD}]+[a-zA-Z][\x{200B}-\x{200D}\x{2060}\x{FEFF}\x{00AD}]+[a-zA-Z]",
        "Zero-width characters splitting Latin words.",
        raw=True,
    ),
    InjectionRule(
        "OB-MIXED-SCRIPT", "obfuscation", 0.2,
        r"[a-zA-Z][\x{0430}-\x{044F}\x{0410}-\x{042F}\x{0456}\x{0458}\x{0455}\x{03B1}-\x{03C9}][a-zA-Z]",
        "Cyrillic or Greek look-alike letters inside a Latin word.",
        raw=True,
    ),
)
