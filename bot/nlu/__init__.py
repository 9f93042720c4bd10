"""Backline's NLU: a spaCy pipeline built from the Rasa component names in config.yml."""

# Rasa component names Backline understands; each maps onto part of the spaCy pipeline
# (bot/nlu/pipeline.py builds it; bot/project_keys.py says which of their settings it reads).
TOKENIZERS = {"WhitespaceTokenizer", "SpacyTokenizer", "JiebaTokenizer", "MitieTokenizer"}
FEATURIZERS = {"RegexFeaturizer", "LexicalSyntacticFeaturizer", "CountVectorsFeaturizer", "SpacyFeaturizer",
               "LanguageModelFeaturizer", "ConveRTFeaturizer", "MitieFeaturizer"}
CLASSIFIERS = {"LogisticRegressionClassifier", "DIETClassifier", "SklearnIntentClassifier",
               "KeywordIntentClassifier", "MitieIntentClassifier"}
EXTRACTORS = {"RegexEntityExtractor", "CRFEntityExtractor", "SpacyEntityExtractor", "DucklingEntityExtractor"}
OTHERS = {"EntitySynonymMapper", "FallbackClassifier", "ResponseSelector", "SpacyNLP"}
KNOWN_COMPONENTS = TOKENIZERS | FEATURIZERS | CLASSIFIERS | EXTRACTORS | OTHERS
